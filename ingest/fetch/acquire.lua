-- Take a request slot for a host: at most N in flight, starts spaced by S (clock: Redis TIME).
-- KEYS: 1 host:{host} (sorted set: tokens by lease expiry, ms)  2 host:{host}:next (next start, ms)
-- ARGV: 1 token  2 slots per host  3 spacing ms  4 lease ms  5 ms to wait when all slots are taken
-- Returns 0 when the slot is taken for the token, else ms to wait before asking again.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local spacing, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return tonumber(ARGV[5])
end
local next_at = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < next_at then
  return next_at - now
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
if spacing > 0 then
  redis.call('SET', KEYS[2], now + spacing, 'PX', spacing)
end
return 0
