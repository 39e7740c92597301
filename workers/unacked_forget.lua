-- Forget a dead broker channel once nothing it held or took is left to restore (and it did not come back).
-- KEYS: 1 broker:workers  2 broker:held:{holder}  3 broker:taking:{holder}
-- ARGV: 1 holder
-- Returns 1 when forgotten, 0 when it beat again or still holds tags or taken messages.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
local busy = redis.call('SCARD', KEYS[2]) > 0 or redis.call('LLEN', KEYS[3]) > 0
if (expiry and tonumber(expiry) > now) or busy then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
