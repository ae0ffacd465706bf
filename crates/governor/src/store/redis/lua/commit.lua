-- Applies a batch of commits in order, each atomic with the ones before it: a commit's guards
-- are checked against the state the commits before it left, before its first write, then its
-- ops run. The batch stops at the first commit whose guard fails (the commits after it were
-- decided assuming it). Every guard and op name is checked before anything is written (Redis
-- does not roll back a script that fails half-way). All keys start with the prefix ARGV[1]
-- (put a hash tag in it on Redis Cluster). Numbers arrive already checked by Rust; guards are
-- written as `not (x <= cap)` so that a NaN could never pass.
-- ARGV[2]: JSON {now, commits = [{guards = [...], ops = [...]}, ...]}. ARGV[3] on: the texts
-- stored as they are, never parsed here — the parts of decision records, which ops name by
-- argument number (`head_arg`, `tail_arg`), and the names and values of the stream entries they
-- add, which ops name as a run of arguments (`fields_arg`, `fields_len`). Decoding them as JSON
-- was this script's largest cost. A record is stored as its head, the trace (its decision
-- entry's `trace` value, `trace_arg`) and its tail: the trace is sent once, unescaped.
-- The fences of a batch are taken in one INCRBY before its first commit: commit i gets the
-- i-th; the fences of the commits not applied are skipped (fences are unique and increasing,
-- not consecutive).
-- Returns {n, fence_1, ..., fence_n, failed}: n commits applied with their fences, then the
-- index (1-based) of the failed guard of commit n + 1, or 0 when every commit was applied.
local P = ARGV[1]
local req = cjson.decode(ARGV[2])

local function kill_state()
  local v = redis.call('GET', P .. 'kill')
  if not v or v == '0' or v == 'ACTIVE' then return 'ACTIVE' end
  if v == 'REDUCING' then return 'REDUCING' end
  return 'HALTED' -- '1', 'HALTED', or anything unreadable: fail closed
end

local function num(v)
  return tonumber(v) or 0
end

local guard = {}
guard.undecided = function(g)
  return redis.call('EXISTS', P .. 'governor:decision:' .. g.plan_id) == 0
end
-- A stored record's verdict: its first `"verdict":` key is the record's own (it comes before
-- the trace, whose gate inputs may hold a fact of that name).
local function verdict_of(record)
  local _, key_end = string.find(record, '"verdict":"', 1, true)
  if not key_end then return nil end
  local value_end = string.find(record, '"', key_end + 1, true)
  return value_end and string.sub(record, key_end + 1, value_end - 1)
end
-- A stored rotation's phase: its last key (RotationLock's field order), so that a pending
-- plan's own fields, which come first, can never pass for it.
local function phase_of(rotation)
  return rotation and string.match(rotation, '"phase":"([a-z_]+)"}$')
end
-- The rotation with its phase set to `phase`.
local function with_phase(rotation, phase)
  return (string.gsub(rotation, '"phase":"[a-z_]+"}$', '"phase":"' .. phase .. '"}'))
end
guard.rotation_slot_held = function(g)
  local d = redis.call('GET', P .. 'governor:decision:' .. g.plan_id)
  local r = redis.call('HGET', P .. 'governor:rotations', g.plan_id)
  return d and verdict_of(d) == 'PENDING' and phase_of(r) == 'slot_held'
end
guard.trading_state_is = function(g)
  return kill_state() == g.state
end
-- Whether `symbol`'s slot is promised to a rotation (Book::slot_promised): a rotation is
-- closing it, or its slot is held for a rotation's pending plan. It is no one else's.
local function slot_promised(symbol)
  for _, json in ipairs(redis.call('HVALS', P .. 'governor:rotations')) do
    local r = cjson.decode(json)
    if r.close_symbol == symbol then return true end
    if r.phase == 'slot_held' and r.pending.symbol == symbol then return true end
  end
  return false
end
guard.slot_available = function(g)
  if slot_promised(g.symbol) then return false end
  local side = redis.call('HGET', P .. 'governor:slots', g.symbol)
  if side then return side == g.side end
  return redis.call('HLEN', P .. 'governor:slots') + num(g.unledgered) < num(g.desired)
end
guard.exit_lock_free = function(g)
  local holder = redis.call('GET', P .. 'exit:lock:' .. g.symbol)
  return (not holder) or holder == g.holder
end
guard.cooldown_clear = function(g)
  local t = redis.call('HGET', P .. 'governor:cooldown', g.symbol)
  return (not t) or num(t) <= num(g.since)
end
guard.opens_below = function(g)
  local n = redis.call('ZCOUNT', P .. 'governor:opens', '(' .. g.since, '+inf')
  return n < num(g.limit)
end
guard.no_reservation_since = function(g)
  return num(redis.call('GET', P .. 'governor:reservation_seq')) == num(g.seq)
end
guard.reservation_exists = function(g)
  return redis.call('HEXISTS', P .. 'governor:reservations', g.plan_id) == 1
end
guard.rotation_exists = function(g)
  return redis.call('HEXISTS', P .. 'governor:rotations', g.plan_id) == 1
end
guard.rotation_awaiting_close = function(g)
  return phase_of(redis.call('HGET', P .. 'governor:rotations', g.plan_id)) == 'awaiting_close'
end
-- No open of the symbol is permitted and unsettled (a reservation) or in doubt
-- (Book::open_in_flight): a close's guard.
guard.no_open_in_flight = function(g)
  for _, json in ipairs(redis.call('HVALS', P .. 'governor:reservations')) do
    if cjson.decode(json).symbol == g.symbol then return false end
  end
  for _, json in ipairs(redis.call('HVALS', P .. 'governor:in_doubt')) do
    local o = cjson.decode(json)
    if o.symbol == g.symbol and string.sub(o.action, 1, 4) == 'OPEN' then return false end
  end
  return true
end
guard.result_not_applied = function(g)
  return redis.call('EXISTS', P .. 'governor:result:' .. g.plan_id) == 0
end
guard.not_in_doubt = function(g)
  return redis.call('HEXISTS', P .. 'governor:in_doubt', g.plan_id) == 0
end
-- The reconciler's guard: the symbol's ledger version is the one it compared, and nothing is
-- in flight on it (a reservation, a live exit lock, an order in doubt).
guard.ledger_settled = function(g)
  if num(redis.call('HGET', P .. 'governor:ledger_versions', g.symbol)) ~= num(g.version) then
    return false
  end
  if redis.call('EXISTS', P .. 'exit:lock:' .. g.symbol) == 1 then return false end
  local needle = '"symbol":"' .. g.symbol .. '"'
  for _, hash in ipairs({'governor:reservations', 'governor:in_doubt'}) do
    for _, json in ipairs(redis.call('HVALS', P .. hash)) do
      if string.find(json, needle, 1, true) then return false end
    end
  end
  return true
end
guard.side_slots_below = function(g)
  local held = redis.call('HGET', P .. 'governor:slots', g.symbol)
  if held then return held == g.side end
  local used = 0
  for _, side in ipairs(redis.call('HVALS', P .. 'governor:slots')) do
    if side == g.side then used = used + 1 end
  end
  return used + num(g.unledgered) < num(g.limit)
end

-- The commit being applied: its fence, and the text that replaces the placeholder fence in
-- the JSON the ops store.
local fence, fence_text

local function slot_acquire(symbol, side)
  redis.call('HSET', P .. 'governor:slots', symbol, side)
  redis.call('HINCRBY', P .. 'governor:slot_refs', symbol, 1)
end
local function slot_release(symbol)
  local n = redis.call('HINCRBY', P .. 'governor:slot_refs', symbol, -1)
  if n <= 0 then
    redis.call('HDEL', P .. 'governor:slot_refs', symbol)
    redis.call('HDEL', P .. 'governor:slots', symbol)
  end
end
-- Adds the entry whose names and values are the op's run of arguments.
local function xadd(stream, o, maxlen)
  redis.call('XADD', P .. stream, 'MAXLEN', '~', maxlen, '*',
    unpack(ARGV, o.fields_arg, o.fields_arg + o.fields_len - 1))
end
local function fmt(x)
  return string.format('%.17g', x)
end

local op = {}
op.record = function(o)
  local record = ARGV[o.head_arg] .. ARGV[o.trace_arg] .. ARGV[o.tail_arg]
  redis.call('SET', P .. 'governor:decision:' .. o.plan_id, record, 'EX', o.ttl_secs)
  xadd('stream:governor.decisions', o, 100000)
end
op.reserve = function(o)
  local json = string.gsub(o.json, '"fence":0', fence_text, 1)
  redis.call('HSET', P .. 'governor:reservations', o.plan_id, json)
  redis.call('INCR', P .. 'governor:reservation_seq')
  slot_acquire(o.symbol, o.side)
  local key = P .. 'capital:reserved:' .. o.symbol
  redis.call('INCRBY', key, o.notional_micro)
  redis.call('EXPIRE', key, 600)
end
op.write_permit = function(o)
  local json = string.gsub(o.json, '"fence":0', fence_text, 1)
  redis.call('SET', P .. 'permit:' .. o.plan_id, json, 'PX', o.ttl_ms)
  local count = P .. 'governor:permits_granted:' .. o.plan_id
  redis.call('INCR', count)
  redis.call('EXPIRE', count, 604800)
end
op.write_block = function(o)
  redis.call('SET', P .. 'governor:block:' .. o.plan_id, o.json, 'EX', o.ttl_secs)
end
op.take_exit_lock = function(o)
  redis.call('SET', P .. 'exit:lock:' .. o.symbol, o.holder, 'PX', o.ttl_ms)
  redis.call('SADD', P .. 'governor:exit_locks', o.symbol)
end
op.release_exit_lock = function(o)
  local key = P .. 'exit:lock:' .. o.symbol
  if redis.call('GET', key) == o.holder then
    redis.call('DEL', key)
    redis.call('SREM', P .. 'governor:exit_locks', o.symbol)
  end
end
op.count_open = function(o)
  redis.call('HSET', P .. 'governor:cooldown', o.symbol, o.at)
  redis.call('ZADD', P .. 'governor:opens', o.at, o.member)
end
op.start_rotation = function(o)
  redis.call('HSET', P .. 'governor:rotations', o.plan_id, o.json)
  redis.call('INCR', P .. 'governor:reservation_seq') -- a rotation promises slots (core commit.rs)
  redis.call('SET', P .. 'rotation:lock:' .. o.plan_id, o.lock_json, 'PX', o.ttl_ms)
end
-- The pending plan's symbol and side, read from the stored rotation (strings only: no
-- number is re-encoded, so nothing loses precision).
local function pending_slot(json)
  local r = cjson.decode(json)
  return r.pending.symbol, r.pending.action.Open
end
op.mark_rotation_close_permitted = function(o)
  local json = redis.call('HGET', P .. 'governor:rotations', o.plan_id)
  if phase_of(json) == 'awaiting_close' then
    redis.call('HSET', P .. 'governor:rotations', o.plan_id, with_phase(json, 'close_permitted'))
  end
end
op.hold_rotation_slot = function(o)
  local json = redis.call('HGET', P .. 'governor:rotations', o.plan_id)
  local phase = phase_of(json)
  if phase == 'awaiting_close' or phase == 'close_permitted' then
    local symbol, side = pending_slot(json)
    json = with_phase(json, 'slot_held')
    redis.call('HSET', P .. 'governor:rotations', o.plan_id, json)
    redis.call('INCR', P .. 'governor:reservation_seq')
    slot_acquire(symbol, side)
  end
end
op.end_rotation = function(o)
  local json = redis.call('HGET', P .. 'governor:rotations', o.plan_id)
  if json then
    if phase_of(json) == 'slot_held' then slot_release((pending_slot(json))) end
    redis.call('HDEL', P .. 'governor:rotations', o.plan_id)
    redis.call('DEL', P .. 'rotation:lock:' .. o.plan_id)
  end
end
op.publish_plan = function(o)
  xadd('stream:apply.plan', o, 1000000)
end
op.set_trading_state = function(o)
  redis.call('SET', P .. 'kill', o.to)
end
local function bump_ledger_version(symbol)
  redis.call('HINCRBY', P .. 'governor:ledger_versions', symbol, 1)
end
op.fill_open = function(o)
  local key = P .. 'position:ledger:' .. o.symbol
  bump_ledger_version(o.symbol)
  local side = redis.call('HGET', key, 'side')
  local sign = (o.side == 'LONG') and 1 or -1
  if side == o.side then
    local q = math.abs(num(redis.call('HGET', key, 'position_amt')))
    local e = num(redis.call('HGET', key, 'entry_price'))
    local dq, p = num(o.qty), num(o.price)
    local q2 = q + dq
    local fees = num(redis.call('HGET', key, 'entry_fees')) + num(o.entry_fees)
    redis.call('HSET', key, 'position_amt', fmt(sign * q2), 'entry_price', fmt((e * q + p * dq) / q2),
      'entry_fees', fmt(fees))
  else
    if not side then slot_acquire(o.symbol, o.side) else redis.call('HSET', P .. 'governor:slots', o.symbol, o.side) end
    redis.call('DEL', key)
    local fields = {'HSET', key, 'position_amt', fmt(sign * num(o.qty)), 'entry_price', o.price, 'side', o.side,
      'leverage', o.leverage, 'opened_at', o.opened_at, 'realized_pnl', '0', 'entry_fees', o.entry_fees}
    if o.entry_score and o.entry_score ~= cjson.null then
      table.insert(fields, 'entry_score'); table.insert(fields, o.entry_score)
    end
    redis.call(unpack(fields))
    redis.call('SADD', P .. 'governor:ledger', o.symbol)
  end
end
op.release_reservation = function(o)
  local json = redis.call('HGET', P .. 'governor:reservations', o.plan_id)
  if json then
    local r = cjson.decode(json)
    redis.call('HDEL', P .. 'governor:reservations', o.plan_id)
    slot_release(r.symbol)
    local key = P .. 'capital:reserved:' .. r.symbol
    local micro = math.floor(num(r.notional) * 1000000 + 0.5)
    if num(redis.call('DECRBY', key, micro)) <= 0 then redis.call('DEL', key) end
  end
end
op.reduce_position = function(o)
  local key = P .. 'position:ledger:' .. o.symbol
  local amt = redis.call('HGET', key, 'position_amt')
  if not amt then return end
  bump_ledger_version(o.symbol)
  local q = math.abs(num(amt))
  local dq = num(o.qty)
  local left = q - dq
  if left <= math.max(q, dq) * 1e-9 then
    redis.call('DEL', key)
    redis.call('SREM', P .. 'governor:ledger', o.symbol)
    slot_release(o.symbol)
  else
    local sign = (redis.call('HGET', key, 'side') == 'SHORT') and -1 or 1
    local fees = num(redis.call('HGET', key, 'entry_fees'))
    redis.call('HSET', key, 'position_amt', fmt(sign * left), 'entry_fees', fmt(fees * left / q))
  end
end
op.prune_opens = function(o)
  redis.call('ZREMRANGEBYSCORE', P .. 'governor:opens', '-inf', o.before)
end
op.mark_in_doubt = function(o)
  redis.call('HSET', P .. 'governor:in_doubt', o.plan_id, o.json)
end
op.mark_result_applied = function(o)
  redis.call('SET', P .. 'governor:result:' .. o.plan_id, '1', 'EX', 604800)
  redis.call('HDEL', P .. 'governor:in_doubt', o.plan_id)
end
op.emit = function(o)
  xadd('stream:governor.events', o, 100000)
end
-- Equity peaks per hour (the drawdown window): the text Rust rendered is stored as is.
op.record_equity = function(o)
  local key = P .. 'governor:equity'
  local cur = redis.call('HGET', key, o.hour)
  if (not cur) or num(cur) < num(o.equity) then redis.call('HSET', key, o.hour, o.equity) end
  for _, h in ipairs(redis.call('HKEYS', key)) do
    if num(h) < num(o.keep_from) then redis.call('HDEL', key, h) end
  end
end
op.reset_equity = function(o)
  redis.call('DEL', P .. 'governor:equity')
  redis.call('HSET', P .. 'governor:equity', o.hour, o.equity)
end
op.set_halt = function(o)
  if o.json and o.json ~= cjson.null then redis.call('SET', P .. 'governor:halt', o.json)
  else redis.call('DEL', P .. 'governor:halt') end
end
-- Closes in the order their results were applied (a list: equal timestamps keep that order);
-- the oldest are dropped once they left the loss-streak retention.
op.record_close = function(o)
  local key = P .. 'governor:closes'
  redis.call('RPUSH', key, o.json)
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head or num(cjson.decode(head).at) >= num(o.keep_from) then break end
    redis.call('LPOP', key)
  end
end

-- The ops' single arguments, by key.
local text_args = {'head_arg', 'tail_arg', 'trace_arg'}
for _, c in ipairs(req.commits) do
  for _, g in ipairs(c.guards) do
    if not guard[g.guard] then return redis.error_reply('unknown guard ' .. tostring(g.guard)) end
  end
  for _, o in ipairs(c.ops) do
    if not op[o.op] then return redis.error_reply('unknown op ' .. tostring(o.op)) end
    for _, a in ipairs(text_args) do
      if o[a] and not ARGV[o[a]] then return redis.error_reply('missing argument ' .. tostring(o[a])) end
    end
    if o.fields_arg then
      local last = o.fields_arg + o.fields_len - 1
      if o.fields_len < 2 or o.fields_len % 2 ~= 0 or o.fields_arg < 3 then
        return redis.error_reply('bad fields ' .. tostring(o.fields_arg) .. '+' .. tostring(o.fields_len))
      end
      if not ARGV[last] then return redis.error_reply('missing argument ' .. tostring(last)) end
    end
  end
end

local out = {0}
fence = redis.call('INCRBY', P .. 'governor:fence', #req.commits) - #req.commits
for _, c in ipairs(req.commits) do
  for i, g in ipairs(c.guards) do
    if not guard[g.guard](g) then
      out[#out + 1] = i
      return out
    end
  end
  fence = fence + 1
  fence_text = '"fence":' .. fence
  for _, o in ipairs(c.ops) do
    op[o.op](o)
  end
  out[1] = out[1] + 1
  out[#out + 1] = fence
end
out[#out + 1] = 0
return out
