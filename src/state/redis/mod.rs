//! [`RedisStore`]: counters, leases, sticky entries and documents in a Redis server that many
//! replicas share.
//!
//! # Layout
//!
//! Every key starts with `{<namespace>}:`, a hash tag, so that all of a store's keys live in one
//! cluster slot and one script may touch them all:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns}:c:<counter>` | string | a counter's value (decimal text that reads back as the exact double), expiring `ttl` after creation ([`Counter::idle`](super::Counter::idle): after its last change or listing) |
//! | `{ns}:s:<sticky>` | string | a sticky entry's label, expiring `ttl` after its last use |
//! | `{ns}:leases` | sorted set | open lease ids, scored by expiry (ms since the epoch, server clock) |
//! | `{ns}:lease` | hash | lease id → the lease's reserved charges (a JSON array: counter key, amount as `%.17g`, …) |
//! | `{ns}:lease_seq` | string | the last lease id |
//! | `{ns}:f:<flag>` | string | a flag (`1`), expiring when its time is up |
//! | `{ns}:leases:swept` | sorted set | ids of leases that expired unsettled in the last day, and (`u` and an id) batches of unreserved charges applied in the last day, scored by when |
//! | `{ns}:d:<set>:<key>` | string | a document of a [`Documents`] set: bytes the host keeps for its replicas, expiring with the set's time to live |
//! | `{ns}:di:<set>` | sorted set | the set's keys, scored by when each was kept (ms since the epoch, server clock) |
//! | `{ns}:ds:<set>` | hash | key → the document's size in bytes |
//! | `{ns}:db:<set>` | string | the bytes of the set's documents together |
//!
//! # Atomicity
//!
//! [`admit`](StateStore::admit) and [`settle`](StateStore::settle) are one Lua script call each
//! (`EVALSHA`; when the server does not have the script yet, `SCRIPT LOAD` and `EVALSHA` again).
//! The script reads the time from the server (`TIME`), gives back the reservations of expired
//! leases, applies the settlements and, for an admission, takes the first choice that fits, exactly
//! as [`MemoryStore`](super::MemoryStore) does: counters are read once, added to in doubles in the
//! same order, and written back once, so both stores hold the same values.
//! [`read`](StateStore::read) is one `MGET`. Keeping and deleting a document are one script call
//! each; reading one is a `GET`.
//!
//! Every key a call names is passed in `KEYS`, with two exceptions. The counters of leases that
//! expire unsettled are named only in the lease hash, so the script that gives their reservations
//! back touches keys it was not passed; and keeping a document drops the documents it makes room
//! for, named only in its set's index. They share the namespace's hash tag, so they are in the same
//! cluster slot (a server that insists on declared keys refuses those scripts).
//!
//! Numbers travel in binary: one argument of little-endian integers and doubles, whose per-choice
//! records the script decodes with `struct.unpack` only for the choices it examines (most
//! admissions take their first); the reply is one string of doubles.
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
use redis::{Cmd, Script, Value};

use self::call::{Names, malformed};
use super::{Admit, Admitted, Counter, Settlement, StateStore, validate};
use crate::error::{Error, ErrorKind, Result};

mod call;
mod documents;
mod script;

pub use self::documents::Documents;

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
/// with Lua scripting), shared by every replica that uses the same server and namespace, and sets
/// of [`Documents`] for the host.
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
    names: Names,
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
                script: Script::new(script::ADMIT),
                names: Names::new(&format!("{{{ns}}}:")),
                namespace: config.namespace.clone(),
                deadline: config.deadline(),
            }),
        })
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

    /// Runs the script: `admit`'s counters and choices (none for a plain settlement) after
    /// `settle`. Sends `EVALSHA`, and loads the script when the server does not have it yet (after
    /// a restart or a `SCRIPT FLUSH`).
    async fn run(&self, admit: &Admit, settle: &[Settlement]) -> Result<(Value, call::Shape)> {
        let (cmd, shape) = call::encode(&self.inner.names, self.inner.script.get_hash(), admit, settle);
        let script = &self.inner.script;
        let reply = self
            .call(|mut con| async move {
                match cmd.query_async::<Value>(&mut con).await {
                    Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                        script.load_async(&mut con).await?;
                        cmd.query_async::<Value>(&mut con).await
                    }
                    other => other,
                }
            })
            .await?;
        Ok((reply, shape))
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
        let (reply, shape) = self.run(admit, &admit.settle).await?;
        call::admitted(reply, admit, &shape)
    }

    async fn settle(&self, settlements: &[Settlement]) -> Result<()> {
        if settlements.is_empty() {
            return Ok(());
        }
        self.run(&Admit::default(), settlements).await.map(|_| ())
    }

    async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd =
            Cmd::with_capacity(1 + counters.len(), 8 + counters.iter().map(|c| 32 + c.key().len()).sum::<usize>());
        cmd.arg("MGET");
        let mut scratch = Vec::with_capacity(128);
        for c in counters {
            self.inner.names.write_counter(&mut cmd, &mut scratch, c);
        }
        let reply = self.call(|mut con| async move { cmd.query_async::<Value>(&mut con).await }).await?;
        let Value::Array(items) = reply else {
            return Err(malformed());
        };
        if items.len() != counters.len() {
            return Err(malformed());
        }
        items.iter().map(number).collect()
    }
}

/// Whole milliseconds, rounded up so that a positive duration stays positive; zero stays zero.
fn millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A counter's value: its decimal text, or nil for a missing counter.
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
    fn millis_round_up() {
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::ZERO), 0);
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
    }

    #[test]
    fn counter_values_are_read_from_their_text() {
        for x in [0.1, 1.0 / 3.0, 1e-300, 1e300, -2.5] {
            assert_eq!(number(&Value::BulkString(format!("{x:.17e}").into_bytes())).unwrap(), x);
        }
        assert!(number(&Value::BulkString(b"x".to_vec())).is_err());
        assert_eq!(number(&Value::Nil).unwrap(), 0.0);
    }

    #[test]
    fn debug_shows_no_url() {
        let config = RedisConfig::new().with_namespace("ns");
        assert_eq!(config.namespace, "ns");
        assert!(RedisStore::lazy("redis://:secret@127.0.0.1:1", config.clone()).is_err(), "no runtime here");
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let store = rt.block_on(async { RedisStore::lazy("redis://:secret@127.0.0.1:1", config).unwrap() });
        let debug = format!("{store:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("ns"));
    }
}
