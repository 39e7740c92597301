-- Queue requests for their hosts: each job once (a job queued, leased or done already is not queued again).
-- KEYS: 1 hostq:jobs (hash: job id -> job JSON)  2 hostq:ready (sorted set: host by ms it may be claimed)
--       3 hostq:wake (list: wakes a waiting dispatcher)  4 hostq: (host queue prefix: + host = list of ids)
--       5 fetched: (done-marker prefix: + job id = string, the page was fetched and handed on)
-- ARGV: 1 front (1: at the head of its host's queue, as feed polls go)  then per job: id, host, job JSON
-- Returns how many jobs were queued. Clock: Redis TIME.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local queued = 0
for i = 2, #ARGV, 3 do
  local id, host = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', KEYS[5] .. id) == 0 and redis.call('HSETNX', KEYS[1], id, ARGV[i + 2]) == 1 then
    if ARGV[1] == '1' then
      redis.call('LPUSH', KEYS[4] .. host, id)
    else
      redis.call('RPUSH', KEYS[4] .. host, id)
    end
    redis.call('ZADD', KEYS[2], 'NX', now, host)
    queued = queued + 1
  end
end
if queued > 0 then
  redis.call('LPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], 0, 0)
end
return queued
