-- End claimed jobs: release the host's slot and the lease; `done` drops the job (a page job also leaves
-- its done marker, so the entry is not fetched again), `again` puts it back at the head of its host's queue.
-- KEYS: 1 hostq:jobs  2 hostq:ready  3 hostq:leases  4 hostq:wake  5 hostq: (host queue prefix)
--       6 host: (slot prefix)  7 fetched: (done-marker prefix)  8 hostq:tries (hash: job id -> leases lost)
-- ARGV: 1 done-marker ttl s  then per job: id, host, outcome (`done` | `fetched` | `again`)
-- Returns how many leases were still held. Clock: Redis TIME.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local held = 0
for i = 2, #ARGV, 3 do
  local id, host, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  held = held + redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[6] .. host, id)
  if outcome == 'again' then
    redis.call('LPUSH', KEYS[5] .. host, id)
  else
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[8], id)
    if outcome == 'fetched' then
      redis.call('SET', KEYS[7] .. id, '1', 'EX', tonumber(ARGV[1]))
    end
  end
  if redis.call('LLEN', KEYS[5] .. host) > 0 then
    local next_at = tonumber(redis.call('GET', KEYS[6] .. host .. ':next') or '0')
    redis.call('ZADD', KEYS[2], 'LT', math.max(now, next_at), host)
  end
end
redis.call('LPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, 0)
return held
