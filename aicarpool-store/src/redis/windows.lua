-- Charges one settled request to a subscription window, recording the
-- utilization its answer reported first (it counts what came before).
-- KEYS[1]: the window's hash.
-- ARGV: member, weight, micro-USD, utilization in millionths ('' for none),
--       TTL in ms.
local k = KEYS[1]
if ARGV[4] ~= '' then
  local sent = redis.call('HGET', k, 'sent') or '0'
  if redis.call('HEXISTS', k, 'fu') == 0 then
    redis.call('HSET', k, 'fu', ARGV[4], 'fs', sent)
  end
  redis.call('HSET', k, 'lu', ARGV[4], 'ls', sent)
end
redis.call('HINCRBY', k, 'sent', ARGV[3])
redis.call('HINCRBY', k, 'u:' .. ARGV[1], ARGV[3])
redis.call('HINCRBY', k, 'n:' .. ARGV[1], 1)
redis.call('HSET', k, 'w:' .. ARGV[1], ARGV[2])
redis.call('PEXPIRE', k, ARGV[5])
return 1
