-- A poll starts: the feed's lease is tied to the worker process running it (workers/liveness.py).
-- KEYS: 1 pollers (hash: feed URL -> holder)  2 workers (zset: holder -> heartbeat expiry, ms)
-- ARGV: 1 feed URL  2 holder  3 heartbeat ttl ms (registers a holder before its first heartbeat)
-- Returns 1.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]), ARGV[2])
end
return 1
