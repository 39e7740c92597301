-- A poll ended: its feed is no longer tied to this worker (unless another poll of it took over).
-- KEYS: 1 pollers
-- ARGV: 1 feed URL  2 holder
-- Returns 1 when released, 0 when another holder had it.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
