//! [`Documents`]: a bounded set of byte documents in a [`RedisStore`]'s namespace, for state a host
//! application's replicas share next to the routing state (the gateway keeps its Responses API
//! answers in one).

use std::fmt;
use std::time::Duration;

use redis::Script;

use super::{RedisStore, millis};
use crate::error::{Error, ErrorKind, Result};

/// Keeps a document and makes room for it. `KEYS`: the index (sorted set of keys by when kept, in
/// microseconds of the server's clock, strictly increasing so that the oldest go first even within
/// one millisecond), the sizes (hash), the total bytes (string), the document. `ARGV`: the key, the
/// bytes, the time to live in ms, the most documents, the most bytes, the documents' key prefix.
/// Returns 1 when kept, 0 when the document is larger than the whole allowance (what was kept under
/// the key stays).
const PUT: &str = r"
local index, sizes, total_key, doc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local key, value = ARGV[1], ARGV[2]
local ttl, max_count, max_bytes, prefix = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local size = string.len(value)
if max_count < 1 or size > max_bytes then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local total = tonumber(redis.call('GET', total_key) or '0')
local function drop(k)
  local s = tonumber(redis.call('HGET', sizes, k) or '0')
  redis.call('HDEL', sizes, k)
  redis.call('ZREM', index, k)
  redis.call('DEL', prefix .. k)
  total = total - s
end
-- A key kept again replaces the one kept before.
if redis.call('ZSCORE', index, key) then
  drop(key)
end
-- Those whose time is up (their documents have expired already), then the oldest while full.
for _, k in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now - ttl * 1000)) do
  drop(k)
end
while redis.call('ZCARD', index) >= max_count or total + size > max_bytes do
  local oldest = redis.call('ZRANGE', index, 0, 0)
  if #oldest == 0 then
    break
  end
  drop(oldest[1])
end
-- An empty set holds nothing, whatever the count said (a size lost to an eviction policy).
if total < 0 or redis.call('ZCARD', index) == 0 then
  total = 0
end
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
local score = now
if #last == 2 and tonumber(last[2]) >= score then
  score = tonumber(last[2]) + 1
end
redis.call('SET', doc, value, 'PX', ttl)
redis.call('ZADD', index, score, key)
redis.call('HSET', sizes, key, size)
redis.call('SET', total_key, total + size, 'KEEPTTL')
-- The bookkeeping lives as long as the longest-lived document; a put never shortens it.
for _, k in ipairs({index, sizes, total_key}) do
  if redis.call('PTTL', k) < ttl then
    redis.call('PEXPIRE', k, ttl)
  end
end
return 1
";

/// Forgets a document. `KEYS` as [`PUT`]'s; `ARGV`: the key. Returns 1 when a document was there.
const DELETE: &str = r"
local index, sizes, total_key, doc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local s = redis.call('HGET', sizes, ARGV[1])
if s then
  redis.call('HDEL', sizes, ARGV[1])
  redis.call('ZREM', index, ARGV[1])
  if redis.call('ZCARD', index) > 0 and tonumber(redis.call('GET', total_key) or '0') > tonumber(s) then
    redis.call('DECRBY', total_key, s)
  else
    redis.call('DEL', total_key)
  end
end
return redis.call('DEL', doc)
";

/// The longest time to live a document set takes: a hundred years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A set of documents (bytes under string keys) in a [`RedisStore`]'s namespace that every replica
/// naming the same server, namespace and set shares: at most `max_count` of them and `max_bytes`
/// together (the oldest go first to make room; one larger than `max_bytes` is not kept), each for
/// `ttl` after it was kept. Made by [`RedisStore::documents`]; a cheap [`Clone`] handle.
///
/// Keeping and deleting are one script call each, reading is one `GET`; all are bounded by the
/// store's deadline (its connection and response timeouts), so a store for large documents wants
/// a longer response timeout than one for counters. The documents' bytes are the host's: they
/// never appear in errors or `Debug` output.
///
/// ```no_run
/// use std::time::Duration;
///
/// use switchyard::state::{RedisConfig, RedisStore};
///
/// # async fn run() -> switchyard::Result<()> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisConfig::new().with_namespace("prod")).await?;
/// let sessions = store.documents("sessions", Duration::from_secs(3600), 10_000, 64 << 20)?;
/// assert!(sessions.put("s-1", b"{\"turns\": 3}").await?);
/// assert_eq!(sessions.get("s-1").await?.as_deref(), Some(&b"{\"turns\": 3}"[..]));
/// assert!(sessions.delete("s-1").await?);
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Clone)]
pub struct Documents {
    store: RedisStore,
    set: String,
    index: String,
    sizes: String,
    total: String,
    prefix: String,
    ttl: Duration,
    max_count: u64,
    max_bytes: u64,
    put: Script,
    delete: Script,
}

impl RedisStore {
    /// The set of documents named `set` in this store's namespace, with its bounds (see
    /// [`Documents`]). Replicas that share a set should give it the same bounds: each keeps to its
    /// own when it adds a document.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a `set` name that is empty or holds `:`, `{` or `}`, or a `ttl`
    /// of zero or above 100 years.
    pub fn documents(&self, set: &str, ttl: Duration, max_count: u64, max_bytes: u64) -> Result<Documents> {
        if set.is_empty() || set.contains([':', '{', '}']) {
            return Err(Error::new(
                ErrorKind::Config,
                "a document set's name must be non-empty and hold no `:`, `{` or `}`",
            ));
        }
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(Error::new(
                ErrorKind::Config,
                "a document set's time to live must be above zero and at most 100 years",
            ));
        }
        let ns = &self.inner.namespace;
        Ok(Documents {
            store: self.clone(),
            set: set.to_owned(),
            index: format!("{{{ns}}}:di:{set}"),
            sizes: format!("{{{ns}}}:ds:{set}"),
            total: format!("{{{ns}}}:db:{set}"),
            prefix: format!("{{{ns}}}:d:{set}:"),
            ttl,
            max_count,
            max_bytes,
            put: Script::new(PUT),
            delete: Script::new(DELETE),
        })
    }
}

impl Documents {
    /// Keeps `value` under `key`, replacing what was kept there and making room by dropping the
    /// oldest; whether it was kept. It is not when it is larger than the set's `max_bytes` (or the
    /// set holds none), and then what was kept under `key` stays.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the server fails or does not answer in time.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut invocation = self.put.prepare_invoke();
        invocation
            .key(&self.index)
            .key(&self.sizes)
            .key(&self.total)
            .key(self.document_key(key))
            .arg(key)
            .arg(value)
            .arg(millis(self.ttl))
            .arg(self.max_count)
            .arg(self.max_bytes)
            .arg(&self.prefix);
        let kept: i64 = self.store.call(|mut con| async move { invocation.invoke_async(&mut con).await }).await?;
        Ok(kept == 1)
    }

    /// The document kept under `key`, or `None` when there is none (never kept, dropped to make
    /// room, deleted, or expired).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the server fails or does not answer in time.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.document_key(key));
        self.store.call(|mut con| async move { cmd.query_async::<Option<Vec<u8>>>(&mut con).await }).await
    }

    /// Forgets the document kept under `key`; whether there was one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`] when the server fails or does not answer in time.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mut invocation = self.delete.prepare_invoke();
        invocation.key(&self.index).key(&self.sizes).key(&self.total).key(self.document_key(key)).arg(key);
        let deleted: i64 = self.store.call(|mut con| async move { invocation.invoke_async(&mut con).await }).await?;
        Ok(deleted > 0)
    }

    fn document_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl fmt::Debug for Documents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Documents")
            .field("set", &self.set)
            .field("ttl", &self.ttl)
            .field("max_count", &self.max_count)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}
