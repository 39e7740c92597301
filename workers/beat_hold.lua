-- Take the beat lock when free, renew it when ours (workers/beatlock.py).
-- KEYS: 1 beat:lock   ARGV: 1 owner token  2 lock ttl ms
-- Returns 1 when this owner holds the lock, 0 while another does.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  return 1
end
return 0
