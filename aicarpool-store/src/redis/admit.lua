-- Admission (mode 'admit') and a scope's counters (mode 'usage').
--
-- KEYS, 10 per scope, scopes in lock order:
--   1 lease (zset ticket -> expiry)   2 resv (zset 'ticket|t|c' -> expiry)
--   3 sum (hash t, c: reserved)       4 rpm (zset ticket -> admitted at)
--   5 tpm (hash second -> tokens)     6 load (baseline lock)
--   7..10 daily, weekly, monthly, total (hash t, c: settled)
-- ARGV:
--   1 mode  2 now (ms)  3 ticket  4 reserve tokens  5 reserve cost
--   6 lease expiry (ms)  7 in-flight keys TTL (ms)  8 load lock TTL (ms)
--   9 load lock token  10..13 period key TTLs (ms)
--   14..17 window ends (ms, -1: never)  18 scope count
--   then 12 per scope: unlimited (1/0), concurrency, rpm, tpm,
--   tokens daily/weekly/monthly/total, cost daily/weekly/monthly/total
-- Reply, a flat list of integers:
--   {2, scope, mine, ...}  baseline needed: 'mine' 1 = this caller holds
--                          the scope's load lock and seeds it, 0 = wait
--   {1, scope, kind, used, retry ms (-1: never), ...}  refused
--   admit: {0, then 16 per scope: tracked, in flight, requests,
--           oldest request (ms, -1), minute tokens, oldest token second
--           (-1), reserved t, reserved c, settled t x4, settled c x4}
--   usage: {0, settled t, c per window x4, reserved t, c, in flight,
--           requests}
-- Kinds: 0 concurrency, 1 rpm, 2 tpm, 10+w tokens, 20+w cost (w 0..3).

local KS, AS, A0 = 10, 12, 18
local MINUTE = 60000
-- Mirrors the in-memory limiter: in-flight requests finish in seconds.
local IN_FLIGHT_RETRY = 2000
local CONCURRENCY_RETRY = 1000

local mode = ARGV[1]
local now_arg = ARGV[2]
local now = tonumber(now_arg)
local now_sec = math.floor(now / 1000)
local ticket = ARGV[3]
local reserve_t, reserve_c = ARGV[4], ARGV[5]
local expires = ARGV[6]
local flight_ttl = ARGV[7]
local lock_ttl = ARGV[8]
local lock_token = ARGV[9]
local period_ttl = { ARGV[10], ARGV[11], ARGV[12], ARGV[13] }
local window_end = { tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]) }
local n = tonumber(ARGV[A0])

local function key(i, j)
  return KEYS[(i - 1) * KS + j]
end

local function limit(i, j)
  return tonumber(ARGV[A0 + (i - 1) * AS + j])
end

-- 1. Which scopes have counters. A scope's total counter doubles as its
-- "seeded" marker: every write refreshes it with the longest TTL, so it
-- outlives the scope's other counters. A limited scope without it takes
-- the load lock (or learns another caller holds it); an unlimited one is
-- left untracked, costing no baseline query.
local tracked, seeds = {}, { 2 }
for i = 1, n do
  if redis.call('EXISTS', key(i, 10)) == 1 then
    tracked[i] = true
  elseif limit(i, 1) ~= 1 then
    local lock = key(i, 6)
    local mine = redis.call('SET', lock, lock_token, 'NX', 'PX', lock_ttl)
    if not mine and redis.call('GET', lock) == lock_token then
      mine = true
    end
    seeds[#seeds + 1] = i - 1
    seeds[#seeds + 1] = mine and 1 or 0
  end
end
if #seeds > 1 then
  return seeds
end

-- 2. Bring each tracked scope up to now and read it.
local state = {}
for i = 1, n do
  if tracked[i] then
    sweep(key(i, 1), key(i, 2), key(i, 3), now_arg, flight_ttl)
    redis.call('ZREMRANGEBYSCORE', key(i, 4), '-inf', int(now - MINUTE))
    local sum = redis.call('HMGET', key(i, 3), 't', 'c')
    local s = {
      in_flight = redis.call('ZCARD', key(i, 1)),
      requests = redis.call('ZCARD', key(i, 4)),
      res_t = nonneg(num(sum[1])),
      res_c = nonneg(num(sum[2])),
      spent_t = {},
      spent_c = {},
    }
    for w = 1, 4 do
      local v = redis.call('HMGET', key(i, 6 + w), 't', 'c')
      s.spent_t[w] = num(v[1])
      s.spent_c[w] = num(v[2])
    end
    state[i] = s
  end
end

if mode == 'usage' then
  local s = state[1]
  local out = { 0 }
  for w = 1, 4 do
    out[#out + 1] = s.spent_t[w]
    out[#out + 1] = s.spent_c[w]
  end
  out[#out + 1] = s.res_t
  out[#out + 1] = s.res_c
  out[#out + 1] = s.in_flight
  out[#out + 1] = s.requests
  redis.call('PEXPIRE', key(1, 10), period_ttl[4])
  return out
end

local function minute(i, s)
  if not s.tpm_total then
    s.tpm_total, s.tpm_live = minute_tokens(key(i, 5), now_sec)
  end
  return s.tpm_total, s.tpm_live
end

local function until_end(w)
  if window_end[w] < 0 then
    return -1
  end
  return nonneg(window_end[w] - now)
end

-- The same checks, in the same order, as the in-memory limiter: a scope
-- with room left admits, and the request may then use more than the room.
local function check(i, s)
  local concurrency = limit(i, 2)
  if concurrency > 0 and s.in_flight >= concurrency then
    return 0, s.in_flight, CONCURRENCY_RETRY
  end
  local rpm = limit(i, 3)
  if rpm > 0 and s.requests >= rpm then
    -- The slot frees when the rpm-th most recent admission ages out.
    local rank = s.requests - rpm
    local r = redis.call('ZRANGE', key(i, 4), rank, rank, 'WITHSCORES')
    return 1, s.requests, nonneg(tonumber(r[2]) + MINUTE - now)
  end
  local tpm = limit(i, 4)
  if tpm > 0 then
    local total, live = minute(i, s)
    local used = total + s.res_t
    if used >= tpm then
      local room = nonneg(tpm - s.res_t)
      local retry, left = IN_FLIGHT_RETRY, total
      for _, b in ipairs(live) do
        left = left - b[2]
        if left < room then
          retry = (b[1] + 60) * 1000 - now
          break
        end
      end
      return 2, used, retry
    end
  end
  for w = 1, 4 do
    local tokens, cost = limit(i, 4 + w), limit(i, 8 + w)
    local settled = s.spent_t[w]
    local used = settled + s.res_t
    if tokens > 0 and used >= tokens then
      return 10 + w - 1, used, (settled >= tokens) and until_end(w) or IN_FLIGHT_RETRY
    end
    settled = nonneg(s.spent_c[w])
    used = settled + s.res_c
    if cost > 0 and used >= cost then
      return 20 + w - 1, used, (settled >= cost) and until_end(w) or IN_FLIGHT_RETRY
    end
  end
  return nil
end

-- 3. Check every scope; any refusal takes nothing anywhere.
local refusals = { 1 }
for i = 1, n do
  if tracked[i] then
    local kind, used, retry = check(i, state[i])
    if kind then
      refusals[#refusals + 1] = i - 1
      refusals[#refusals + 1] = kind
      refusals[#refusals + 1] = used
      refusals[#refusals + 1] = retry
    end
  end
end
if #refusals > 1 then
  return refusals
end

-- 4. Take the request slot, the lease and the reservation everywhere, and
-- report the counters for the headroom headers.
local member = ticket .. '|' .. reserve_t .. '|' .. reserve_c
local out = { 0 }
for i = 1, n do
  if tracked[i] then
    local s = state[i]
    redis.call('ZADD', key(i, 1), expires, ticket)
    redis.call('ZADD', key(i, 2), expires, member)
    add_reserved(key(i, 3), reserve_t, reserve_c, flight_ttl)
    for j = 1, 3 do
      redis.call('PEXPIRE', key(i, j), flight_ttl)
    end
    local rpm = limit(i, 3)
    local oldest = -1
    if rpm == 0 then
      redis.call('DEL', key(i, 4))
      s.requests = 0
    else
      redis.call('ZADD', key(i, 4), now_arg, ticket)
      s.requests = s.requests + 1
      if s.requests > rpm then
        redis.call('ZREMRANGEBYRANK', key(i, 4), 0, s.requests - rpm - 1)
        s.requests = rpm
      end
      redis.call('PEXPIRE', key(i, 4), 2 * MINUTE)
      local first = redis.call('ZRANGE', key(i, 4), 0, 0, 'WITHSCORES')
      oldest = tonumber(first[2])
    end
    redis.call('PEXPIRE', key(i, 10), period_ttl[4])
    local tpm_total, tpm_oldest = 0, -1
    if limit(i, 4) > 0 then
      local total, live = minute(i, s)
      tpm_total = total
      if #live > 0 then
        tpm_oldest = live[1][1]
      end
    end
    out[#out + 1] = 1
    out[#out + 1] = s.in_flight + 1
    out[#out + 1] = s.requests
    out[#out + 1] = oldest
    out[#out + 1] = tpm_total
    out[#out + 1] = tpm_oldest
    out[#out + 1] = s.res_t + tonumber(reserve_t)
    out[#out + 1] = s.res_c + tonumber(reserve_c)
    for w = 1, 4 do
      out[#out + 1] = s.spent_t[w]
    end
    for w = 1, 4 do
      out[#out + 1] = s.spent_c[w]
    end
  else
    for _ = 1, 16 do
      out[#out + 1] = 0
    end
  end
end
return out
