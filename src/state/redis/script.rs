//! The admission script, run by `EVALSHA` once per admission or settlement.
//!
//! # Arguments
//!
//! `KEYS`: 1 the lease set, 2 the lease hash, 3 the lease sequence, 4 the set of swept leases, 5
//! the sticky entry (when there is none, any key of the namespace, which is not read), then the
//! call's distinct counters from 6 (the admission's first), then one flag key per choice that has a
//! flag and per flag to set. Every key the script touches is in `KEYS` except the counters of
//! expired leases and of leases released by id that this call does not list, which only the lease
//! hash names (all keys share the namespace's hash tag, so they live in one cluster slot).
//!
//! `ARGV`: 1 the numbers (below), then one lease id per settlement (decimal; empty for charges that
//! were never reserved; `u` and a decimal batch id for unreserved charges applied at most once,
//! remembered as a member of the swept set for a day), then, with a sticky entry only, one label per
//! choice.
//!
//! Numbers are binary, little-endian, read with `struct.unpack`, so that the script decodes only
//! what it uses (Lua parses decimal text slowly, and most admissions examine only their first
//! choice). Key references are absolute indices into `KEYS`; amounts and weights are IEEE doubles,
//! exact.
//!
//! `ARGV[1]` holds, read with fixed formats: `I4` distinct counters, `I4` of which the admission's,
//! `I4` choices, `I4` settlements, `I4` flags to set, `d` the lease's life (ms), `d` the sticky
//! entry's life (ms; -1 without one), `B` 1 when some check is soft, `B` 1 when the admission lists
//! an idle-expiring counter, `d` the lease id the caller names (0: the next of the sequence); then
//! one `d` per counter, its life in ms (0: for ever; negative: from its last change or listing,
//! [`Counter::idle`](crate::state::Counter::idle)); then one `I4` per choice, where its record
//! starts; then per flag to set `I4 d`, its key and its life in ms; then per settlement `I4` its number of charges and per
//! charge `I4 d d`: the counter, the amount reserved and the amount used; then the choices'
//! records.
//!
//! A choice's record is `I4` its number of values, then the values, all doubles, decoded by one
//! `unpack` call only when the choice is examined: its flag key (0: none), its number of charges
//! and per charge the counter and the amount, its number of checks and per check the bound
//! (`limit·(1 + slack) + slack`), 1 if soft (else 0), its number of terms and per term the counter,
//! the weight and what this choice charges to that counter.
//!
//! # Arithmetic
//!
//! Counters hold their double as text that reads back exactly: the script reads each counter once
//! (`MGET`), adds in doubles as [`MemoryStore`](crate::state::MemoryStore) does, and writes each
//! changed counter once at the end (`SET … KEEPTTL`, or `PX` with its life when it did not exist or
//! expires idle).
//! The new value is passed to `redis.call` as a Lua number, which Redis turns into text itself,
//! exactly (`%.17g` in 7.0; later versions write the shortest text that reads back exactly), at
//! less cost than `string.format` in Lua. A lease keeps its reserved amounts as `%.17g` texts (in
//! JSON, where Lua numbers would keep 14 digits), so that giving them back subtracts exactly what
//! was added.
//!
//! # Reply
//!
//! One string of little-endian doubles: the choice taken (0-based) or -1, the lease id or 0, 1 if
//! the choice was the sticky entry's, the number of flagged choices passed over, the index and the
//! flag's milliseconds left of each, then the values of the admission's distinct counters (one
//! string rather than a Lua table: Redis would truncate Lua numbers to integers, and one string is
//! the least to convert on both sides).
pub(super) const ADMIT: &str = r#"
local call = redis.call
local unpack_ = struct.unpack
local format = string.format
local inf = math.huge
local DAY = 86400000
local leases, lease, seq, swept = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

-- Expired leases give their reservations back to the counters that still exist, and are
-- remembered for a day, so that a late settlement adds its whole actual amount once.
local expired = call('ZRANGEBYSCORE', leases, '-inf', now)
if #expired > 0 then
  local any = false
  for _, id in ipairs(expired) do
    local enc = call('HGET', lease, id)
    if enc then
      local charges = cjson.decode(enc)
      for j = 1, #charges, 2 do
        local v = call('GET', charges[j])
        if v then
          local x = (tonumber(v) or error('counter is not a number')) - tonumber(charges[j + 1])
          call('SET', charges[j], x, 'KEEPTTL')
        end
      end
      call('HDEL', lease, id)
      call('ZADD', swept, now, id)
      any = true
    end
    call('ZREM', leases, id)
  end
  -- The set of swept leases forgets them after a day (a settlement checks the age as well).
  if any then call('ZREMRANGEBYSCORE', swept, '-inf', now - DAY) end
end

local h = ARGV[1]
local nk, nu, c, m, nflags, lease_ttl, sticky_ttl, soft, idle, named, p = unpack_('<I4I4I4I4I4ddBBd', h)
local ttls = p
local offsets = ttls + 8 * nk
p = offsets + 4 * c

-- Flags: set, or kept when their remaining life is longer.
for _ = 1, nflags do
  local k, ttl
  k, ttl, p = unpack_('<I4d', h, p)
  if ttl > 0 and call('PTTL', KEYS[k]) < ttl then call('SET', KEYS[k], '1', 'PX', ttl) end
end

-- Every counter (and the sticky entry) in one read; in slices, as unpack has a limit on the values
-- it returns (a sync of shared learning reads thousands).
local vals, fresh = {}, {}
local label = false
local first, last = 6, 5 + nk
if sticky_ttl >= 0 then first = 5 end
for a = first, last, 1000 do
  local got = call('MGET', unpack(KEYS, a, math.min(last, a + 999)))
  for j = 1, #got do
    local k, v = a + j - 1, got[j]
    if k == 5 then
      label = v
    elseif v then
      vals[k] = tonumber(v) or error('counter is not a number')
    else
      vals[k] = 0
      fresh[k] = true
    end
  end
end

-- Changes are kept in vals and written once, at the end.
local changed, dirty = {}, {}
local function add(k, amount)
  local v = vals[k] + amount
  if v ~= v or v == inf or v == -inf then error('increment would produce NaN or Infinity') end
  vals[k] = v
  if not dirty[k] then
    dirty[k] = true
    changed[#changed + 1] = k
  end
end

-- Settlements: actual - reserved while the lease is live (every lease left after the sweep is),
-- actual once it has expired or when it was never reserved, nothing when it was settled before
-- (a settlement sent again after a reply was lost) or swept more than a day ago.
-- A lease released by id alone gives back its reservation as held: to a counter of this call
-- through `add` (written at the end with the others), to any other directly.
local slot_of = false
local function give_back(enc)
  if not slot_of then
    slot_of = {}
    for k = 6, 5 + nk do slot_of[KEYS[k]] = k end
  end
  local charges = cjson.decode(enc)
  for j = 1, #charges, 2 do
    local name, amount = charges[j], tonumber(charges[j + 1])
    local k = slot_of[name]
    if k then
      -- A counter that no longer exists has nothing to give back to (as for an expired lease).
      if not fresh[k] then add(k, -amount) end
    else
      local v = call('GET', name)
      if v then call('SET', name, (tonumber(v) or error('counter is not a number')) - amount, 'KEEPTTL') end
    end
  end
end

local marked = false
for s = 1, m do
  local id = ARGV[1 + s]
  local n
  n, p = unpack_('<I4', h, p)
  local live, apply = false, true
  if string.sub(id, 1, 1) == 'u' then
    -- A batch of unreserved charges, applied once: one sent again after a lost reply is skipped.
    -- Marked at the end, with the counters' writes, so that a script that fails marks nothing.
    marked = marked or {}
    apply = not marked[id] and not call('ZSCORE', swept, id)
    if apply then
      marked[id] = true
      marked[#marked + 1] = id
    end
  elseif id ~= '' then
    local held = n == 0 and call('HGET', lease, id)
    live = call('HDEL', lease, id) == 1
    if live then
      call('ZREM', leases, id)
      if held then give_back(held) end
    else
      local at = call('ZSCORE', swept, id)
      apply = false
      if at then
        call('ZREM', swept, id)
        apply = tonumber(at) > now - DAY
      end
    end
  end
  for _ = 1, n do
    local k, reserved, actual
    k, reserved, actual, p = unpack_('<I4dd', h, p)
    local delta = actual
    if live then delta = actual - reserved end
    if apply and delta ~= 0 and delta == delta and delta ~= inf and delta ~= -inf then add(k, delta) end
  end
end


-- A choice's record, decoded once, when it is first examined.
local records = {}
local function record(i)
  local r = records[i]
  if not r then
    local n, q = unpack_('<I4', h, unpack_('<I4', h, offsets + 4 * (i - 1)))
    r = { unpack_('<' .. string.rep('d', n), h, q) }
    records[i] = r
  end
  return r
end

-- A choice whose flag is set is passed over, and reported with the flag's remaining life. With
-- strict, soft checks count too.
local blocked = {}
local function usable(i, strict)
  local r = record(i)
  if r[1] > 0 then
    local ttl = r.flag
    if not ttl then
      ttl = call('PTTL', KEYS[r[1]])
      r.flag = ttl
    end
    if ttl > 0 then
      if strict then
        blocked[#blocked + 1] = i - 1
        blocked[#blocked + 1] = ttl
      end
      return false
    end
  end
  local q = 3 + 2 * r[2]
  for _ = 1, r[q] do
    local bound, weak, terms = r[q + 1], r[q + 2], r[q + 3]
    q = q + 3
    if strict or weak == 0 then
      local sum = 0
      for _ = 1, terms do
        sum = sum + r[q + 2] * (vals[r[q + 1]] + r[q + 3])
        q = q + 3
      end
      if not (sum <= bound) then return false end
    else
      q = q + 3 * terms
    end
  end
  return true
end

-- The sticky entry's choice first (the first one with its label), then the others in order.
local labels = 1 + m
local preferred = nil
if label then
  for i = 1, c do
    if ARGV[labels + i] == label then
      preferred = i
      break
    end
  end
end
local taken = nil
local function pass(strict)
  if preferred and usable(preferred, strict) then return preferred end
  for i = 1, c do
    if i ~= preferred and usable(i, strict) then return i end
  end
  return nil
end
taken = pass(true)
-- None passes every check: the first that passes every check but the soft ones.
if not taken and soft == 1 then taken = pass(false) end

local id, hit = 0, 0
if taken then
  local r = record(taken)
  local reserved = {}
  local q = 2
  for j = 1, r[2] do
    local k, amount = r[q + 1], r[q + 2]
    q = q + 2
    add(k, amount)
    reserved[2 * j - 1] = KEYS[k]
    reserved[2 * j] = format('%.17g', amount)
  end
  if named > 0 then id = format('%.0f', named) else id = call('INCR', seq) end
  call('ZADD', leases, now + lease_ttl, id)
  call('HSET', lease, id, cjson.encode(reserved))
  if sticky_ttl >= 0 then
    local chosen = ARGV[labels + taken]
    if label == chosen then hit = 1 end
    if sticky_ttl > 0 then
      call('SET', KEYS[5], chosen, 'PX', sticky_ttl)
    else
      call('DEL', KEYS[5])
    end
  end
end

for _, k in ipairs(changed) do
  local v = vals[k]
  local ttl = unpack_('<d', h, ttls + 8 * (k - 6))
  if ttl < 0 then
    call('SET', KEYS[k], v, 'PX', -ttl)
  elseif not fresh[k] then
    call('SET', KEYS[k], v, 'KEEPTTL')
  elseif ttl > 0 then
    call('SET', KEYS[k], v, 'PX', ttl)
  else
    call('SET', KEYS[k], v)
  end
end
-- Batches of unreserved charges applied by this call, remembered for a day.
if marked then
  for _, id in ipairs(marked) do call('ZADD', swept, now, id) end
  call('ZREMRANGEBYSCORE', swept, '-inf', now - DAY)
end
-- Idle-expiring counters the admission lists live on, changed or not.
if idle == 1 then
  for k = 6, 5 + nu do
    if not dirty[k] and not fresh[k] then
      local ttl = unpack_('<d', h, ttls + 8 * (k - 6))
      if ttl < 0 then call('PEXPIRE', KEYS[k], -ttl) end
    end
  end
end

-- The reply: one string of doubles.
local parts = { struct.pack('<dddd', (taken or 0) - 1, id, hit, #blocked / 2) }
if #blocked > 0 then parts[2] = struct.pack('<' .. string.rep('d', #blocked), unpack(blocked)) end
for a = 6, 5 + nu, 1000 do
  local b = math.min(5 + nu, a + 999)
  parts[#parts + 1] = struct.pack('<' .. string.rep('d', b - a + 1), unpack(vals, a, b))
end
return table.concat(parts)
"#;
