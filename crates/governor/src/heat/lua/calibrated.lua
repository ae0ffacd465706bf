-- Publishes one calibrated proposal, enforces it if asked, acknowledges its stream entry and
-- counts it, in one atomic step: a crash leaves either all of it or none of it (the entry is
-- then delivered again).
-- KEYS: 1 harvest.calibrated stream, 2 the proposal hash, 3 harvest.proposal stream, 4 stats hash
-- ARGV: 1 group, 2 entry id, 3 enforce (1/0), 4 the proposal's harvest_action,
--       5 calibrated action, 6 calibrated (1/0), 7 downgraded (1/0), 8.. field, value, ...
local enforced = 'shadow'
if ARGV[6] ~= '1' then
  enforced = 'uncalibrated'
elseif ARGV[3] == '1' then
  local current = redis.call('HGET', KEYS[2], 'harvest_action')
  if not current then
    enforced = 'missing_proposal'
  elseif current ~= ARGV[4] then
    enforced = 'stale_proposal'
  else
    redis.call('HSET', KEYS[2], 'action', ARGV[5], 'calibrated', '1')
    enforced = 'written'
  end
end
local args = {KEYS[1], 'MAXLEN', '~', '100000', '*'}
for i = 8, #ARGV do
  args[#args + 1] = ARGV[i]
end
args[#args + 1] = 'enforced'
args[#args + 1] = enforced
redis.call('XADD', unpack(args))
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[4], 'proposals', 1)
redis.call('HINCRBY', KEYS[4], enforced, 1)
if ARGV[7] == '1' then
  redis.call('HINCRBY', KEYS[4], 'downgraded', 1)
end
return enforced
