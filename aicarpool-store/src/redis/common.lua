-- Helpers shared by the limiter's scripts (prepended to each of them).

-- An integer as a decimal string. Redis turns a Lua number argument into
-- text with a float format that may use an exponent, which HINCRBY and
-- ZADD refuse, so every computed number is passed through this.
local function int(x)
  return string.format('%d', x)
end

-- A counter as read from Redis; missing is zero.
local function num(v)
  return tonumber(v) or 0
end

local function nonneg(x)
  if x < 0 then
    return 0
  end
  return x
end

-- Adds to a running sum of reservations. The sum shares the TTL of the
-- reservations it adds up; should it have expired alone, the recreated
-- key gets one too.
local function add_reserved(sum, t, c, ttl)
  redis.call('HINCRBY', sum, 't', t)
  redis.call('HINCRBY', sum, 'c', c)
  if redis.call('PTTL', sum) < 0 then
    redis.call('PEXPIRE', sum, ttl)
  end
end

-- Drops the leases and reservations whose expiry (clock time) has passed:
-- their instance died or lost Redis before it could give them back. A
-- reservation member is 'ticket|tokens|cost', so its amount can be taken
-- off the running sum without a lookup.
local function sweep(lease, resv, sum, now, ttl)
  redis.call('ZREMRANGEBYSCORE', lease, '-inf', now)
  local gone = redis.call('ZRANGEBYSCORE', resv, '-inf', now)
  if #gone > 0 then
    local t, c = 0, 0
    for _, m in ipairs(gone) do
      local mt, mc = string.match(m, '|(%-?%d+)|(%-?%d+)$')
      t = t + num(mt)
      c = c + num(mc)
    end
    redis.call('ZREMRANGEBYSCORE', resv, '-inf', now)
    add_reserved(sum, int(-t), int(-c), ttl)
  end
end

-- Settled tokens of the rolling minute, kept per unix second in a hash.
-- Forgets the seconds that left the minute; returns the total and the
-- live seconds, oldest first, as {second, tokens}.
local function minute_tokens(key, now_sec)
  local flat = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local sec = tonumber(flat[i])
    if sec and sec > now_sec - 60 then
      local n = num(flat[i + 1])
      live[#live + 1] = { sec, n }
      total = total + n
    else
      stale[#stale + 1] = flat[i]
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  table.sort(live, function(a, b)
    return a[1] < b[1]
  end)
  return total, live
end
