-- Queue requests for their hosts: each job once (a job queued, leased or done already is not queued again).
-- KEYS: 1 hostq:jobs (hash: job id -> job JSON)  2 hostq:wake (list: wakes a waiting dispatcher)
--       3 hostq: (base: + kind .. ':' .. host = list of job ids; + 'ready:' .. kind = sorted set of hosts
--       by the ms each may be claimed next)  4 fetched: (done-marker prefix: + job id = the page was fetched)
-- ARGV: 1 front (1: at the head of its host's queue, as feed polls go)  then per job: id, host, kind, JSON
-- Returns how many jobs were queued. Clock: Redis TIME.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local queued = 0
for i = 2, #ARGV, 4 do
  local id, host, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('EXISTS', KEYS[4] .. id) == 0 and redis.call('HSETNX', KEYS[1], id, ARGV[i + 3]) == 1 then
    local queue = KEYS[3] .. kind .. ':' .. host
    if ARGV[1] == '1' then
      redis.call('LPUSH', queue, id)
    else
      redis.call('RPUSH', queue, id)
    end
    redis.call('ZADD', KEYS[3] .. 'ready:' .. kind, 'NX', now, host)
    queued = queued + 1
  end
end
if queued > 0 then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, 0)
end
return queued
