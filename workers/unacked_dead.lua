-- Broker channels whose heartbeat expired, each with the delivery tags it still holds.
-- KEYS: 1 broker:workers (holder -> heartbeat expiry, ms)
-- ARGV: 1 the broker:held: key without its holder  2 at most this many holders
-- Returns a flat list: holder, its number of tags n, its n tags; then the next holder.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, holder in ipairs(dead) do
  local tags = redis.call('SMEMBERS', ARGV[1] .. holder)
  out[#out + 1] = holder
  out[#out + 1] = #tags
  for _, tag in ipairs(tags) do
    out[#out + 1] = tag
  end
end
return out
