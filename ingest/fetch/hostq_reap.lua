-- Jobs whose lease expired (their worker died mid-request) go back to the head of their host's queue;
-- one whose lease was lost `max tries` times is given up on (returned, for the dead-letter stream).
-- KEYS: 1 hostq:jobs  2 hostq:leases  3 hostq: (base, see hostq_add.lua)  4 hostq:tries
-- ARGV: 1 max tries  2 most jobs to look at
-- Returns {requeued count, given-up job JSON, ...}. Clock: Redis TIME. Host and kind: from the job JSON.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {0}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZREM', KEYS[2], id)
  local job = redis.call('HGET', KEYS[1], id)
  if job then
    if redis.call('HINCRBY', KEYS[4], id, 1) >= tonumber(ARGV[1]) then
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[4], id)
      out[#out + 1] = job
    else
      local fields = cjson.decode(job)
      redis.call('LPUSH', KEYS[3] .. fields['kind'] .. ':' .. fields['host'], id)
      redis.call('ZADD', KEYS[3] .. 'ready:' .. fields['kind'], 'NX', now, fields['host'])
      out[1] = out[1] + 1
    end
  end
end
return out
