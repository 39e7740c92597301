-- Release the beat lock if this owner holds it.
-- KEYS: 1 beat:lock   ARGV: 1 owner token
-- Returns 1 when released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
