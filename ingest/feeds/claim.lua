-- Hand out due feeds: move up to a limit of them from the schedule to the in-flight leases.
-- KEYS: 1 schedule (sorted set: feed URL by next poll time)  2 inflight (feed URL by lease expiry)
-- ARGV: 1 now  2 limit  3 lease seconds  4 ZADD batch size  5 cap on feeds in flight (0 = none)
-- Returns the claimed feed URLs, earliest due first.
local limit = tonumber(ARGV[2])
if tonumber(ARGV[5]) > 0 then
  limit = math.min(limit, tonumber(ARGV[5]) - redis.call('ZCARD', KEYS[2]))
end
if limit <= 0 then return {} end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit)
if #due == 0 then return due end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #due - 1)  -- the due feeds are the lowest ranks: one range delete
local until_at = tonumber(ARGV[1]) + tonumber(ARGV[3])
for i = 1, #due, tonumber(ARGV[4]) do
  local scored = {}
  for j = i, math.min(i + tonumber(ARGV[4]) - 1, #due) do
    scored[#scored + 1] = until_at
    scored[#scored + 1] = due[j]
  end
  redis.call('ZADD', KEYS[2], unpack(scored))
end
return due
