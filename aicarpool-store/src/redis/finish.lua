-- Settlement, release and end of lease of one admitted request.
--
-- KEYS: 8 per scope that counted the request at admission: 1 lease,
-- 2 resv, 3 sum, 4 tpm, 5..8 daily, weekly, monthly, total; then 5 per
-- scope that had no counters then: 1 tpm, 2..5 daily .. total.
-- ARGV: 1 ticket, 2 reservation member, 3 drop the lease (1/0), 4 drop
-- the reservation (1/0), 5 count the spend (1/0), 6 reserved tokens,
-- 7 reserved cost, 8 spent tokens, 9 spent cost, 10 now (unix second),
-- 11..14 period key TTLs (ms), 15 tracked scopes, 16 untracked scopes,
-- 17 in-flight keys TTL (ms).
--
-- Removing a member is what gives its amount back, so a lease or a
-- reservation swept as expired is never given back twice.

local ticket, member = ARGV[1], ARGV[2]
local drop_lease, drop_resv, count = ARGV[3] == '1', ARGV[4] == '1', ARGV[5] == '1'
local reserve_t, reserve_c = tonumber(ARGV[6]), tonumber(ARGV[7])
local spent_t, spent_c = ARGV[8], ARGV[9]
local now_sec = ARGV[10]
local period_ttl = { ARGV[11], ARGV[12], ARGV[13], ARGV[14] }
local tracked, untracked = tonumber(ARGV[15]), tonumber(ARGV[16])
local flight_ttl = ARGV[17]

-- Counts the spend in the scope's current periods and its minute. A scope
-- whose total counter is gone went cold: the baseline rebuilds it later,
-- from the usage record this spend is written to.
local function add(tpm, first_period)
  if redis.call('EXISTS', KEYS[first_period + 3]) == 0 then
    return
  end
  for w = 1, 4 do
    local period = KEYS[first_period + w - 1]
    redis.call('HINCRBY', period, 't', spent_t)
    redis.call('HINCRBY', period, 'c', spent_c)
    redis.call('PEXPIRE', period, period_ttl[w])
  end
  if tonumber(spent_t) > 0 then
    redis.call('HINCRBY', KEYS[tpm], now_sec, spent_t)
    redis.call('PEXPIRE', KEYS[tpm], 120000)
  end
end

for i = 1, tracked do
  local k = (i - 1) * 8
  if drop_lease then
    redis.call('ZREM', KEYS[k + 1], ticket)
  end
  if drop_resv and redis.call('ZREM', KEYS[k + 2], member) == 1 then
    add_reserved(KEYS[k + 3], int(-reserve_t), int(-reserve_c), flight_ttl)
  end
  if count then
    add(k + 4, k + 5)
  end
end
if count then
  for i = 1, untracked do
    local k = tracked * 8 + (i - 1) * 5
    add(k + 1, k + 2)
  end
end
return tracked
