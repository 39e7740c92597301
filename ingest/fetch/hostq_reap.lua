-- Jobs whose lease expired (their worker died mid-request) go back to the head of their host's queue;
-- one whose lease was lost `max tries` times is given up on (returned, for the dead-letter stream).
-- KEYS: 1 hostq:jobs  2 hostq:ready  3 hostq:leases  4 hostq: (host queue prefix)  5 hostq:tries
-- ARGV: 1 max tries  2 most jobs to look at
-- Returns {requeued count, given-up job JSON, ...}. Clock: Redis TIME. The host is read from the job JSON.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {0}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZREM', KEYS[3], id)
  local job = redis.call('HGET', KEYS[1], id)
  if job then
    if redis.call('HINCRBY', KEYS[5], id, 1) >= tonumber(ARGV[1]) then
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[5], id)
      out[#out + 1] = job
    else
      local host = cjson.decode(job)['host']
      redis.call('LPUSH', KEYS[4] .. host, id)
      redis.call('ZADD', KEYS[2], 'NX', now, host)
      out[1] = out[1] + 1
    end
  end
end
return out
