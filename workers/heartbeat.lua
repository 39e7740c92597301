-- Heartbeats: each holder (a worker process, or a worker's broker channel) is alive until now + ttl,
-- on this server's clock (hosts whose clocks differ agree on who expired).
-- KEYS: 1 workers zset (holder -> expiry, ms)
-- ARGV: 1 ttl ms  2.. holders
-- Returns the server's time now, ms.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
return now
