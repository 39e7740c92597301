-- Feeds whose poll was running in a worker process that died (its heartbeat expired) go back to
-- the schedule, due now; then the dead processes are forgotten. Touches the polls in flight only.
-- KEYS: 1 pollers (feed URL -> holder)  2 workers (holder -> expiry, ms)  3 inflight  4 schedule
-- ARGV: none
-- Returns how many feeds were put back.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local polls = redis.call('HGETALL', KEYS[1])
local back = 0
for i = 1, #polls, 2 do
  local expiry = redis.call('ZSCORE', KEYS[2], polls[i + 1])
  if not expiry or tonumber(expiry) <= now then
    redis.call('HDEL', KEYS[1], polls[i])
    if redis.call('ZREM', KEYS[3], polls[i]) == 1 then
      redis.call('ZADD', KEYS[4], 'NX', now / 1000, polls[i])
      back = back + 1
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return back
