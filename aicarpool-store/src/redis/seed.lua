-- Seeds cold scopes with what the usage store holds, then gives up the
-- load lock taken by the admission script.
--
-- KEYS, 5 per scope: 1 load lock, 2..5 daily, weekly, monthly, total.
-- ARGV: 1 lock token, 2..5 period key TTLs (ms), 6 scope count, then 9
-- per scope: seed (1) or only unlock (0), tokens x4, cost x4.
--
-- Set-if-absent: a scope another caller seeded meanwhile (its lock
-- expired) keeps its counters, so spend is never counted twice.

local KS, AS, A0 = 5, 9, 6
local token = ARGV[1]
local n = tonumber(ARGV[A0])
for i = 1, n do
  local k, a = (i - 1) * KS, A0 + (i - 1) * AS
  if ARGV[a + 1] == '1' and redis.call('EXISTS', KEYS[k + 5]) == 0 then
    for w = 1, 4 do
      local period = KEYS[k + 1 + w]
      if redis.call('EXISTS', period) == 0 then
        redis.call('HSET', period, 't', ARGV[a + 1 + w], 'c', ARGV[a + 5 + w])
      end
      redis.call('PEXPIRE', period, ARGV[1 + w])
    end
  end
  if redis.call('GET', KEYS[k + 1]) == token then
    redis.call('DEL', KEYS[k + 1])
  end
end
return n
