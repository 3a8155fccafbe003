//! [`RedisStore`]: counters, leases and sticky entries in a Redis server that many replicas share.
//!
//! # Layout
//!
//! Every key starts with `{<namespace>}:`, a hash tag, so that all of a store's keys live in one
//! cluster slot and one script may touch them all:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:c:<counter>` | string | a counter's value (`INCRBYFLOAT`), expiring `ttl` after creation |
//! | `{ns}:s:<sticky>` | string | a sticky entry's label, expiring `ttl` after its last use |
//! | `{ns}:leases` | sorted set | open lease ids, scored by expiry (ms since the epoch, server clock) |
//! | `{ns}:lease` | hash | lease id → the lease's reserved charges |
//! | `{ns}:lease_seq` | string | the last lease id |
//! | `{ns}:f:<flag>` | string | a flag, expiring when its time is up |
//! | `{ns}:leases:swept` | sorted set | ids of leases that expired unsettled in the last day, scored by when |
//!
//! # Atomicity
//!
//! [`admit`](StateStore::admit) and [`settle`](StateStore::settle) are one Lua script call each
//! (`EVALSHA`, falling back to `EVAL` when the server does not have the script yet). The script
//! reads the time from the server (`TIME`), gives back the reservations of expired leases, applies
//! the settlements and, for an admission, takes the first choice that fits, exactly as
//! [`MemoryStore`](super::MemoryStore) does. [`read`](StateStore::read) is one `MGET`.
//!
//! # Failures
//!
//! The store holds a [`ConnectionManager`], which multiplexes every call over one connection and
//! reconnects by itself (on tasks of the Tokio runtime it was created in) after the connection
//! drops. Each call is bounded by the configured connection timeout plus the response timeout; a
//! call that fails or runs out of time returns [`ErrorKind::Store`], and
//! the next call uses the new connection once the server is back. An admission whose reply is lost
//! (the call timed out after the server ran it) keeps its reservation until its lease expires.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use smallvec::SmallVec;

use super::{Admit, Admitted, Counter, Lease, Settlement, StateStore, validate};
use crate::error::{Error, ErrorKind, Result};

/// The admission script. `KEYS`: the lease set, the lease hash, the lease sequence, the sticky
/// entry (any key of the namespace when there is none), the admission's counters, then one key per
/// settled charge. `ARGV`: as `RedisStore::run` writes them. Returns `{choice or -1, lease id or "", sticky hit,
/// counter values as strings..., the number of flagged choices passed over, then the index and the
/// flag's milliseconds left of each}` (a Lua number would be truncated to an integer on the way
/// out).
const ADMIT: &str = r#"
local SLACK = 1e-9
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local argv = ARGV
local a = 0
local function nextarg()
  a = a + 1
  return argv[a]
end
local function num(s)
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  if s == 'NaN' then return 0 / 0 end
  local v = tonumber(s)
  if v == nil then error('malformed number argument') end
  return v
end
local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end
-- Adds to a counter, creating it with its time to live when it does not exist.
local function add(key, ttl, amount)
  local fresh = redis.call('EXISTS', key) == 0
  local v = redis.call('INCRBYFLOAT', key, amount)
  if fresh and ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  return v
end

-- Expired leases give their reservations back to the counters that still exist, and are
-- remembered for a day, so that a late settlement adds its whole actual amount once.
local swept = KEYS[1] .. ':swept'
redis.call('ZREMRANGEBYSCORE', swept, '-inf', now - 86400000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  local enc = redis.call('HGET', KEYS[2], id)
  if enc then
    local charges = cjson.decode(enc)
    for j = 1, #charges, 2 do
      if redis.call('EXISTS', charges[j]) == 1 then
        redis.call('INCRBYFLOAT', charges[j], -num(charges[j + 1]))
      end
    end
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZADD', swept, now, id)
  end
  redis.call('ZREM', KEYS[1], id)
end

local n = tonumber(nextarg())
local ttls = {}
for i = 1, n do ttls[i] = tonumber(nextarg()) end
local has_sticky = nextarg() == '1'
local sticky_ttl = tonumber(nextarg())
local lease_ttl = num(nextarg())

-- Settlements: actual - reserved while the lease is live (every lease left after the sweep is),
-- actual once it has expired or when it was never reserved, nothing when it was settled before
-- (a settlement sent again after a reply was lost).
local k = 4 + n
local m = tonumber(nextarg())
for _ = 1, m do
  local id = nextarg()
  local live = false
  local apply = true
  if id ~= '' then
    live = redis.call('HDEL', KEYS[2], id) == 1
    redis.call('ZREM', KEYS[1], id)
    if not live then apply = redis.call('ZREM', swept, id) == 1 end
  end
  local charges = tonumber(nextarg())
  for _ = 1, charges do
    k = k + 1
    local ttl = tonumber(nextarg())
    local reserved = num(nextarg())
    local actual = num(nextarg())
    local delta = actual
    if live then delta = actual - reserved end
    if apply and delta ~= 0 and finite(delta) then add(KEYS[k], ttl, delta) end
  end
end

-- Flags: set, or kept when their remaining life is longer.
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #'leases')
for _ = 1, tonumber(nextarg()) do
  local key = prefix .. 'f:' .. nextarg()
  local ttl = tonumber(nextarg())
  if ttl > 0 and redis.call('PTTL', key) < ttl then redis.call('SET', key, '1', 'PX', ttl) end
end

local values = {}
local texts = {}
local read = {}
-- In slices: unpack has a limit on the values it returns (a sync of shared learning reads thousands).
for first = 1, n, 1000 do
  local last = math.min(n, first + 999)
  local part = redis.call('MGET', unpack(KEYS, 4 + first, 4 + last))
  for j = 1, #part do read[first + j - 1] = part[j] end
end
for i = 1, n do
  local v = read[i]
  if v then
    texts[i] = v
    values[i] = tonumber(v) or 0
  else
    texts[i] = '0'
    values[i] = 0
  end
end

local c = tonumber(nextarg())
-- Reads the next choice from the arguments.
local function parse()
  local choice = { label = nextarg(), flag = nextarg(), charges = {}, checks = {} }
  for j = 1, tonumber(nextarg()) do
    local idx = tonumber(nextarg()) + 1
    local amount = nextarg()
    choice.charges[j] = { idx, num(amount), amount }
  end
  for j = 1, tonumber(nextarg()) do
    local check = { limit = num(nextarg()), soft = nextarg() == '1', terms = {} }
    for l = 1, tonumber(nextarg()) do
      check.terms[l] = { tonumber(nextarg()) + 1, num(nextarg()) }
    end
    choice.checks[j] = check
  end
  return choice
end

-- With strict, soft checks count too.
local function fits(choice, strict)
  for _, check in ipairs(choice.checks) do
    if strict or not check.soft then
      local sum = 0
      for _, term in ipairs(check.terms) do
        local i = term[1]
        local charge = 0
        for _, g in ipairs(choice.charges) do
          if g[1] == i then charge = charge + g[2] end
        end
        sum = sum + term[2] * (values[i] + charge)
      end
      if not (sum <= check.limit * (1 + SLACK) + SLACK) then return false end
    end
  end
  return true
end

-- A choice whose flag is set is passed over, and reported with the flag's remaining life.
local blocked = {}
local function usable(i, choice, strict)
  if choice.flag ~= '' then
    local ttl = redis.call('PTTL', prefix .. 'f:' .. choice.flag)
    if ttl > 0 then
      if strict then
        blocked[#blocked + 1] = i - 1
        blocked[#blocked + 1] = ttl
      end
      return false
    end
  end
  return fits(choice, strict)
end
local function finish(out)
  for i = 1, n do out[#out + 1] = texts[i] end
  out[#out + 1] = #blocked / 2
  for _, v in ipairs(blocked) do out[#out + 1] = v end
  return out
end

local sticky_label = nil
if has_sticky then
  local s = redis.call('GET', KEYS[4])
  if s then sticky_label = s end
end
local taken = nil
local choice = nil
-- Choices are read from the arguments only when needed (Lua is slow, and most admissions take
-- their first choice).
local choices = {}
local function get(i)
  while #choices < i do choices[#choices + 1] = parse() end
  return choices[i]
end
-- The sticky entry's choice first (the first one with its label), then the others in order.
local first = nil
if sticky_label then
  for i = 1, c do
    if get(i).label == sticky_label then
      first = i
      break
    end
  end
end
local order = {}
if first then order[1] = first end
for i = 1, c do
  if i ~= first then order[#order + 1] = i end
end
for _, i in ipairs(order) do
  if usable(i, get(i), true) then
    taken = i
    break
  end
end
-- None passes every check: the first that passes every check but the soft ones.
if not taken then
  local soft = false
  for i = 1, c do
    for _, check in ipairs(get(i).checks) do
      if check.soft then soft = true end
    end
  end
  if soft then
    for _, i in ipairs(order) do
      if usable(i, choices[i], false) then
        taken = i
        break
      end
    end
  end
end
if taken then choice = choices[taken] end
if not taken then
  return finish({ -1, '', 0 })
end

local reserved = {}
for _, g in ipairs(choice.charges) do
  local key = KEYS[4 + g[1]]
  texts[g[1]] = add(key, ttls[g[1]], g[3])
  reserved[#reserved + 1] = key
  reserved[#reserved + 1] = g[3]
end
local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('ZADD', KEYS[1], now + lease_ttl, id)
redis.call('HSET', KEYS[2], id, cjson.encode(reserved))
local hit = 0
if sticky_label == choice.label then hit = 1 end
if has_sticky then
  if sticky_ttl > 0 then
    redis.call('SET', KEYS[4], choice.label, 'PX', sticky_ttl)
  else
    redis.call('DEL', KEYS[4])
  end
end
return finish({ taken - 1, id, hit })
"#;

/// How a [`RedisStore`] connects and names its keys.
///
/// The defaults suit a Redis server on the same network: 250 ms to connect, 100 ms for a reply,
/// two reconnect retries, namespace `"switchyard"`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    namespace: String,
    connection_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
}

impl RedisConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The prefix of every key, as a hash tag: `{<namespace>}:`. Stores that share a server and a
    /// namespace share their counters. It must not be empty nor contain `{` or `}`.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one attempt to connect may take.
    #[must_use]
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long the server may take to answer one command.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How many times a reconnection is retried (with an exponential backoff) before the calls
    /// waiting for it fail; the next call starts a new reconnection.
    #[must_use]
    pub fn with_reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The connection timeout.
    pub fn connection_timeout(&self) -> Duration {
        self.connection_timeout
    }

    /// The response timeout.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The number of reconnect retries.
    pub fn reconnect_retries(&self) -> usize {
        self.reconnect_retries
    }

    /// The longest a call may take: one connection attempt and one reply.
    fn deadline(&self) -> Duration {
        self.connection_timeout.saturating_add(self.response_timeout)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            namespace: "switchyard".into(),
            connection_timeout: Duration::from_millis(250),
            response_timeout: Duration::from_millis(100),
            reconnect_retries: 2,
        }
    }
}

/// Counters, leases and sticky entries in a Redis server (7.0 or later, or a compatible server
/// with Lua scripting), shared by every replica that uses the same server and namespace.
///
/// Semantics match [`MemoryStore`](super::MemoryStore): an admission takes the first choice that
/// fits (the sticky one first), leases expire and give their reservation back, counters expire
/// `ttl` after their creation. Time is the server's clock. See the [module docs](self) for the key
/// layout and the behaviour on failures.
///
/// `RedisStore` is a cheap [`Clone`] handle; clones share one connection.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
///
/// use switchyard::state::{RedisConfig, RedisStore, StateStore};
///
/// # async fn run() -> switchyard::Result<()> {
/// let config = RedisConfig::new().with_namespace("prod").with_response_timeout(Duration::from_millis(50));
/// // `connect` fails when the server is unreachable; `lazy` starts without it.
/// let store = RedisStore::connect("redis://127.0.0.1:6379", config).await?;
/// assert_eq!(store.name(), "redis");
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    script: Script,
    /// `{ns}:`
    prefix: String,
    namespace: String,
    deadline: Duration,
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[user:password@]host[:port][/db]`) and checks
    /// that it answers.
    ///
    /// Must be called inside a Tokio runtime, which then runs the connection's background tasks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL or namespace; [`ErrorKind::Store`] when the server
    /// does not answer a `PING` within the connection and response timeouts.
    pub async fn connect(url: &str, config: RedisConfig) -> Result<Self> {
        let store = Self::lazy(url, config)?;
        store.call(|mut con| async move { redis::cmd("PING").query_async::<()>(&mut con).await }).await?;
        Ok(store)
    }

    /// A store that connects on its first call, so it can be built while the server is down: calls
    /// fail with [`ErrorKind::Store`] until the server is reachable, then succeed without a new
    /// store. This is how a router starts and serves (on its local fallback) while Redis is down.
    ///
    /// Must be called inside a Tokio runtime, which then runs the connection's background tasks.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL or namespace; [`ErrorKind::Store`] outside a
    /// Tokio runtime.
    pub fn lazy(url: &str, config: RedisConfig) -> Result<Self> {
        let ns = &config.namespace;
        if ns.is_empty() || ns.contains(['{', '}']) {
            return Err(Error::new(ErrorKind::Config, "redis namespace must be non-empty and contain no `{` or `}`"));
        }
        // The URL may carry a password: neither it nor the parser's message goes into the error.
        let client = redis::Client::open(url).map_err(|_| Error::new(ErrorKind::Config, "malformed redis url"))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(ErrorKind::Store, "redis store must be created inside a tokio runtime"));
        }
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connection_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(config.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| store_error("redis connection manager could not be created", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                manager,
                script: Script::new(ADMIT),
                prefix: format!("{{{ns}}}:"),
                namespace: config.namespace.clone(),
                deadline: config.deadline(),
            }),
        })
    }

    /// The namespace of the store's keys.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Runs one request on the shared connection, bounded by the store's deadline.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = self.inner.deadline;
        match tokio::time::timeout(deadline, f(self.inner.manager.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(e)),
            Err(_) => Err(Error::new(
                ErrorKind::Store,
                format!("redis store did not answer within {} ms", deadline.as_millis()),
            )),
        }
    }

    fn counter_key(&self, counter: &Counter) -> String {
        format!("{}c:{}", self.inner.prefix, counter.key())
    }

    /// Runs the script: the admission's counters and choices (none for a plain settlement).
    async fn run(&self, admit: &Admit) -> Result<Value> {
        let prefix = &self.inner.prefix;
        let mut inv = self.inner.script.prepare_invoke();
        inv.key(format!("{prefix}leases")).key(format!("{prefix}lease")).key(format!("{prefix}lease_seq"));
        match &admit.sticky {
            Some(s) => inv.key(format!("{prefix}s:{}", s.key)),
            None => inv.key(format!("{prefix}lease_seq")),
        };
        inv.arg(admit.counters.len());
        for c in &admit.counters {
            inv.key(self.counter_key(c)).arg(millis(c.ttl()));
        }
        match &admit.sticky {
            Some(s) => inv.arg("1").arg(millis(s.ttl)),
            None => inv.arg("0").arg(0),
        };
        inv.arg(num(admit.lease_ttl.as_secs_f64() * 1000.0));
        inv.arg(admit.settle.len());
        for s in &admit.settle {
            let n = s.lease.charges.len().min(s.actual.len());
            // The script takes an empty id for charges that were never reserved.
            let id = if s.lease.id == 0 { String::new() } else { s.lease.id.to_string() };
            inv.arg(id).arg(n);
            for ((counter, reserved), actual) in s.lease.charges.iter().zip(&s.actual) {
                inv.key(self.counter_key(counter)).arg(millis(counter.ttl())).arg(num(*reserved)).arg(num(*actual));
            }
        }
        inv.arg(admit.flags.len());
        for flag in &admit.flags {
            inv.arg(&*flag.name).arg(millis(flag.ttl));
        }
        inv.arg(admit.choices.len());
        for choice in &admit.choices {
            inv.arg(&*choice.label).arg(choice.flag.as_deref().unwrap_or("")).arg(choice.charges.len());
            for &(i, amount) in &choice.charges {
                inv.arg(i).arg(num(amount));
            }
            inv.arg(choice.checks.len());
            for check in &choice.checks {
                inv.arg(num(check.limit)).arg(if check.soft { "1" } else { "0" }).arg(check.terms.len());
                for &(i, w) in &check.terms {
                    inv.arg(i).arg(num(w));
                }
            }
        }
        self.call(|mut con| async move { inv.invoke_async::<Value>(&mut con).await }).await
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show the namespace only.
        f.debug_struct("RedisStore").field("namespace", &self.inner.namespace).finish_non_exhaustive()
    }
}

#[async_trait]
impl StateStore for RedisStore {
    fn name(&self) -> &str {
        "redis"
    }

    async fn admit(&self, admit: &Admit) -> Result<Admitted> {
        validate(admit)?;
        let reply = self.run(admit).await?;
        parse_admitted(reply, admit)
    }

    async fn settle(&self, settlements: &[Settlement]) -> Result<()> {
        if settlements.is_empty() {
            return Ok(());
        }
        let admit = Admit { settle: settlements.to_vec(), ..Admit::default() };
        self.run(&admit).await.map(|_| ())
    }

    async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = counters.iter().map(|c| self.counter_key(c)).collect();
        let reply = self
            .call(|mut con| async move { redis::cmd("MGET").arg(keys).query_async::<Value>(&mut con).await })
            .await?;
        let Value::Array(items) = reply else {
            return Err(malformed());
        };
        if items.len() != counters.len() {
            return Err(malformed());
        }
        items.iter().map(number).collect()
    }
}

/// A number as the script reads it: shortest round-trip digits, `inf`, `-inf` or `NaN`.
fn num(x: f64) -> String {
    format!("{x:?}")
}

/// Whole milliseconds, rounded up so that a positive duration stays positive; zero stays zero.
fn millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn parse_admitted(reply: Value, admit: &Admit) -> Result<Admitted> {
    let Value::Array(items) = reply else {
        return Err(malformed());
    };
    let [choice, id, hit, rest @ ..] = items.as_slice() else {
        return Err(malformed());
    };
    let n = admit.counters.len();
    let (Some(values), Some(tail)) = (rest.get(..n), rest.get(n..)) else {
        return Err(malformed());
    };
    let values = values.iter().map(number).collect::<Result<Vec<f64>>>()?;
    let int = |v: &Value| match v {
        Value::Int(i) => Ok(*i),
        _ => Err(malformed()),
    };
    let (count, pairs) = tail.split_first().ok_or_else(malformed)?;
    let count = usize::try_from(int(count)?).map_err(|_| malformed())?;
    if pairs.len() != 2 * count {
        return Err(malformed());
    }
    let blocked = pairs
        .chunks(2)
        .map(|p| {
            let i = usize::try_from(int(&p[0])?).map_err(|_| malformed())?;
            let ms = u64::try_from(int(&p[1])?).map_err(|_| malformed())?;
            if i >= admit.choices.len() {
                return Err(malformed());
            }
            Ok((i, Duration::from_millis(ms)))
        })
        .collect::<Result<Vec<_>>>()?;
    let &Value::Int(choice) = choice else {
        return Err(malformed());
    };
    let sticky_hit = matches!(hit, Value::Int(1));
    if choice < 0 {
        return Ok(Admitted { choice: None, lease: None, values, sticky_hit: false, blocked });
    }
    let i = usize::try_from(choice).map_err(|_| malformed())?;
    let chosen = admit.choices.get(i).ok_or_else(malformed)?;
    let id = match id {
        Value::BulkString(b) => std::str::from_utf8(b).map_err(|_| malformed())?,
        Value::SimpleString(s) => s.as_str(),
        _ => return Err(malformed()),
    };
    let charges: SmallVec<[(Counter, f64); 4]> =
        chosen.charges.iter().map(|&(c, amount)| (admit.counters[c as usize].clone(), amount)).collect();
    let id = id.parse::<u64>().map_err(|_| malformed())?;
    let lease = Lease { id, charges };
    Ok(Admitted { choice: Some(i), lease: Some(lease), values, sticky_hit, blocked })
}

/// A counter's value: a string (as `INCRBYFLOAT` writes it), or nil for a missing counter.
fn number(v: &Value) -> Result<f64> {
    let parsed = match v {
        Value::Nil => Some(0.0),
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(malformed)
}

fn malformed() -> Error {
    Error::new(ErrorKind::Store, "redis store returned a malformed reply")
}

fn store_error(message: &str, e: redis::RedisError) -> Error {
    Error::new(ErrorKind::Store, message).with_source(e)
}

fn map_error(e: redis::RedisError) -> Error {
    let message = if e.is_timeout() {
        "redis store timed out"
    } else if e.is_connection_refusal() {
        "redis store refused the connection"
    } else if e.is_io_error() || e.is_unrecoverable_error() {
        "redis store connection failed"
    } else if e.code().is_some() {
        "redis store command failed"
    } else {
        "redis store request failed"
    };
    store_error(message, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_their_text() {
        for x in [0.1, 0.7, 1.0 / 3.0, 1e-300, 1e300, -2.5, 0.0] {
            assert_eq!(num(x).parse::<f64>().unwrap(), x);
        }
        assert_eq!(num(f64::INFINITY), "inf");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let admit = Admit::default();
        assert!(parse_admitted(Value::Nil, &admit).is_err());
        assert!(parse_admitted(Value::Array(vec![Value::Int(0)]), &admit).is_err());
        let out_of_range = Value::Array(vec![Value::Int(3), Value::BulkString(b"1".to_vec()), Value::Int(0)]);
        assert!(parse_admitted(out_of_range, &admit).is_err());
        assert!(number(&Value::BulkString(b"x".to_vec())).is_err());
        assert_eq!(number(&Value::Nil).unwrap(), 0.0);
    }

    #[test]
    fn debug_shows_no_url() {
        let config = RedisConfig::new().with_namespace("ns");
        assert_eq!(config.namespace(), "ns");
        assert!(RedisStore::lazy("redis://:secret@127.0.0.1:1", config.clone()).is_err(), "no runtime here");
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let store = rt.block_on(async { RedisStore::lazy("redis://:secret@127.0.0.1:1", config).unwrap() });
        let debug = format!("{store:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("ns"));
    }
}
