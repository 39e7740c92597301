-- End claimed jobs: release the host's slot and the lease; `done` drops the job, `fetched` too and
-- leaves its done marker (the entry's page is not fetched again), `again` puts it back at the head of
-- its host's queue. A host with jobs waiting may be claimed again as soon as its spacing allows.
-- KEYS: 1 hostq:jobs  2 hostq:leases  3 hostq:wake  4 hostq: (base, see hostq_add.lua)  5 host: (slots)
--       6 fetched: (done-marker prefix)  7 hostq:tries (hash: job id -> leases lost)
-- ARGV: 1 done-marker ttl s  then per job: id, host, kind, outcome (`done` | `fetched` | `again`)
-- Returns how many leases were still held. Clock: Redis TIME.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local held = 0
for i = 2, #ARGV, 4 do
  local id, host, kind, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local queue = KEYS[4] .. kind .. ':' .. host
  held = held + redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[5] .. host, id)
  if outcome == 'again' then
    redis.call('LPUSH', queue, id)
  else
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[7], id)
    if outcome == 'fetched' then
      redis.call('SET', KEYS[6] .. id, '1', 'EX', tonumber(ARGV[1]))
    end
  end
  if redis.call('LLEN', queue) > 0 then
    local next_at = tonumber(redis.call('GET', KEYS[5] .. host .. ':next') or '0')
    redis.call('ZADD', KEYS[4] .. 'ready:' .. kind, 'LT', math.max(now, next_at), host)
  end
end
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 0)
return held
