-- A feed moved (301/308): its config, state and seen entries go to the new URL; when the new URL
-- is registered already, the old one is dropped as its duplicate. The move is recorded.
-- KEYS: 1 feeds  2 feed:{old}  3 feed:{new}  4 seen:{old}  5 seen:{new}  6 moved
-- ARGV: 1 old URL  2 new URL
-- Returns 1.
local config = redis.call('HGET', KEYS[1], ARGV[1]) or '{}'
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HSETNX', KEYS[1], ARGV[2], config) == 1 then
  for i = 2, 4, 2 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 1]) end
  end
else
  redis.call('DEL', KEYS[2], KEYS[4])
end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[2])
return 1
