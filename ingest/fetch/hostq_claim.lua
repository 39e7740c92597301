-- Claim the next requests of each host that may take one now: the same limits as acquire.lua (at most
-- N in flight per host, starts spaced by S), shared with every fetcher of every machine. A claimed job
-- holds one of its host's slots (token: the job id) and a lease; hostq_finish.lua ends both.
-- KEYS: 1 hostq:jobs  2 hostq:leases (sorted set: job id by lease expiry, ms)  3 hostq: (base, see
--       hostq_add.lua)  4 host: (slot prefix: + host = sorted set of tokens, + host + ':next' = next start)
--       5 pages (sorted set: fetched pages waiting for extraction)
-- ARGV: 1 most jobs to claim  2 slots per host  3 spacing ms  4 lease ms  5 ms to wait when all slots
--       are taken  6 most jobs leased at once (all dispatchers together)  7 kind of jobs to claim
--       8 most pages waiting for extraction (pages are claimed only below it; 0: no bound)
-- Returns {ms until the next waiting host may be ready (-1: none waits, or no room: a finished job or an
-- extracted page wakes the dispatcher), job JSON, ...}. Clock: Redis TIME.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local slots, spacing, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local room = math.min(tonumber(ARGV[1]), tonumber(ARGV[6]) - redis.call('ZCARD', KEYS[2]))
if tonumber(ARGV[8]) > 0 then
  room = math.min(room, tonumber(ARGV[8]) - redis.call('ZCARD', KEYS[5]))
end
local ready, base = KEYS[3] .. 'ready:' .. ARGV[7], KEYS[3] .. ARGV[7] .. ':'
local out = {-1}

local function claim_from(host)
  local held, next_key, queue = KEYS[4] .. host, KEYS[4] .. host .. ':next', base .. host
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
  local next_at = tonumber(redis.call('GET', next_key) or '0')
  local free = slots - redis.call('ZCARD', held)
  if free <= 0 then
    redis.call('ZADD', ready, now + tonumber(ARGV[5]), host)  -- a finished request brings it forward
    return
  elseif now < next_at then
    redis.call('ZADD', ready, next_at, host)
    return
  end
  local take = spacing > 0 and 1 or free
  while take > 0 and room > 0 do
    local id = redis.call('LPOP', queue)
    if not id then break end
    local job = redis.call('HGET', KEYS[1], id)
    if job then  -- (an id without a job was given up on meanwhile)
      redis.call('ZADD', held, now + lease, id)
      redis.call('ZADD', KEYS[2], now + lease, id)
      out[#out + 1] = job
      take, room = take - 1, room - 1
    end
  end
  redis.call('PEXPIRE', held, lease)
  if spacing > 0 then
    redis.call('SET', next_key, now + spacing, 'PX', spacing)
  end
  if redis.call('LLEN', queue) == 0 then
    redis.call('ZREM', ready, host)
  elseif spacing > 0 or take == 0 then
    redis.call('ZADD', ready, now + spacing, host)
  end
end

if room > 0 then
  for _, host in ipairs(redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, room)) do
    if room <= 0 then break end
    claim_from(host)
  end
end
local first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
if first[2] and room > 0 then
  out[1] = math.max(0, tonumber(first[2]) - now)
end
return out
