//! Responses kept for `previous_response_id` and `GET /v1/responses/{id}` (`[server]
//! stored_responses`), each for the caller that made it, for a while: in this process's memory, or,
//! with `[server] state`, in the Redis server the replicas share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard::{ContentPart, Message};

/// Writes of kept responses under way. Each runs on a task of its own (a client that goes away does
/// not cut it short), so the server's drain does not see them: a shutdown waits for them here.
#[derive(Default)]
pub(crate) struct Writes {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Writes {
    /// Counts one write until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> Writing {
        self.count.fetch_add(1, Ordering::AcqRel);
        Writing(Arc::clone(self))
    }

    /// How many writes are under way.
    pub(crate) fn in_flight(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Completes once no write is under way.
    pub(crate) async fn idle(&self) {
        loop {
            // Registered before the count is read, so that the last write's wake-up is not missed.
            let idle = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One write under way ([`Writes::start`]).
pub(crate) struct Writing(Arc<Writes>);

impl Drop for Writing {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Where kept responses live.
pub(crate) enum Responses {
    /// This process's memory.
    Local(ResponseStore),
    /// The Redis server of `[server] state`: a document set with the same bounds.
    #[cfg(feature = "redis")]
    Shared(switchyard::state::Documents),
}

impl Responses {
    /// Keeps `stored` under `id`. A shared store that fails loses it, saying so in the log (never
    /// its content): the answer goes out all the same, and a follow-up naming it is told it is not
    /// found.
    pub(crate) async fn put(&self, id: String, stored: Stored) {
        match self {
            Self::Local(store) => store.put(id, stored),
            #[cfg(feature = "redis")]
            Self::Shared(documents) => {
                let Ok(bytes) = serde_json::to_vec(&stored) else {
                    tracing::warn!(target: "switchyard_gateway", "a response could not be written as JSON: not kept");
                    return;
                };
                match documents.put(&id, &bytes).await {
                    Ok(true) => {}
                    Ok(false) => tracing::debug!(
                        target: "switchyard_gateway",
                        bytes = bytes.len(),
                        "a response larger than stored_responses_max_bytes was not kept"
                    ),
                    Err(e) => tracing::warn!(target: "switchyard_gateway", error = %e, "a response could not be kept"),
                }
            }
        }
    }

    /// The response kept under `id` for `owner`, unless it expired. Another caller's is not found;
    /// nor is a shared document that does not read as one (written by another version), which the
    /// log reports.
    ///
    /// # Errors
    /// A shared store that fails or does not answer ([`switchyard::ErrorKind::Store`]).
    pub(crate) async fn get(&self, id: &str, owner: Option<&str>) -> switchyard::Result<Option<Arc<Stored>>> {
        match self {
            Self::Local(store) => Ok(store.get(id, owner)),
            #[cfg(feature = "redis")]
            Self::Shared(documents) => {
                let Some(bytes) = documents.get(id).await? else { return Ok(None) };
                // The parser's message may quote the conversation: it is left out.
                let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
                    tracing::warn!(target: "switchyard_gateway", "a kept response does not read as one: not found");
                    return Ok(None);
                };
                Ok((stored.owner.as_deref() == owner).then(|| Arc::new(stored)))
            }
        }
    }

    /// Forgets the response kept under `id` for `owner`; whether there was one.
    ///
    /// # Errors
    /// A shared store that fails or does not answer ([`switchyard::ErrorKind::Store`]).
    pub(crate) async fn remove(&self, id: &str, owner: Option<&str>) -> switchyard::Result<bool> {
        match self {
            Self::Local(store) => Ok(store.remove(id, owner)),
            #[cfg(feature = "redis")]
            Self::Shared(documents) => {
                if self.get(id, owner).await?.is_none() {
                    return Ok(false);
                }
                documents.delete(id).await
            }
        }
    }
}

/// One kept response: the conversation up to and including its answer (without the request's
/// `instructions`, which a follow-up does not inherit), and the response object as it was returned.
#[derive(Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The caller that made it (its virtual key's name); `None` without keys.
    pub(crate) owner: Option<String>,
    pub(crate) conversation: Vec<Message>,
    pub(crate) object: Value,
}

impl Stored {
    /// About how many bytes it holds: its texts, image URLs and tool calls, and the object's JSON.
    fn size(&self) -> usize {
        let message = |m: &Message| -> usize {
            let parts: usize = m
                .content
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    ContentPart::Image { url, .. } => url.len(),
                    _ => 0,
                })
                .sum();
            let calls: usize = m.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len()).sum();
            64 + parts + calls
        };
        self.conversation.iter().map(message).sum::<usize>() + self.object.to_string().len()
    }
}

/// At most `capacity` responses and `max_bytes` of them, each for at most `ttl`; the oldest go first.
pub(crate) struct ResponseStore {
    capacity: usize,
    max_bytes: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each kept response, its size and when it was kept.
    kept: HashMap<String, (Arc<Stored>, usize, Instant)>,
    /// Ids in the order they were kept; ids removed since are skipped when met, and dropped when
    /// they make up half of it.
    order: VecDeque<String>,
    bytes: usize,
}

impl Inner {
    fn drop_id(&mut self, id: &str) -> bool {
        match self.kept.remove(id) {
            Some((_, size, _)) => {
                self.bytes -= size;
                true
            }
            None => false,
        }
    }
}

impl ResponseStore {
    pub(crate) fn new(capacity: usize, max_bytes: usize, ttl: Duration) -> Self {
        Self { capacity, max_bytes, ttl, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `stored` under `id` (a new id), dropping what expired and, beyond the capacity or the
    /// bytes, the oldest. One larger than all the bytes is not kept.
    pub(crate) fn put(&self, id: String, stored: Stored) {
        self.put_at(id, stored, Instant::now());
    }

    fn put_at(&self, id: String, stored: Stored, now: Instant) {
        let size = stored.size();
        if self.capacity == 0 || size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        // An id kept again (ids are unique, so only by mistake) replaces the one kept before.
        if inner.drop_id(&id) {
            inner.order.retain(|kept| kept != &id);
        }
        while let Some(oldest) = inner.order.front() {
            let alive = inner.kept.get(oldest).map(|(_, _, at)| now.saturating_duration_since(*at) < self.ttl);
            let full = inner.kept.len() >= self.capacity || inner.bytes + size > self.max_bytes;
            if alive == Some(true) && !full {
                break;
            }
            if let Some(oldest) = inner.order.pop_front() {
                inner.drop_id(&oldest);
            }
        }
        // Ids removed out of order wait in `order` until they reach its front: drop them once they
        // are as many as the kept ones.
        if inner.order.len() > 2 * inner.kept.len() + 16 {
            let Inner { kept, order, .. } = &mut *inner;
            order.retain(|id| kept.contains_key(id));
        }
        inner.order.push_back(id.clone());
        inner.bytes += size;
        inner.kept.insert(id, (Arc::new(stored), size, now));
    }

    /// The response kept under `id` for `owner`, unless it expired. Another caller's is not found.
    pub(crate) fn get(&self, id: &str, owner: Option<&str>) -> Option<Arc<Stored>> {
        self.get_at(id, owner, Instant::now())
    }

    fn get_at(&self, id: &str, owner: Option<&str>, now: Instant) -> Option<Arc<Stored>> {
        let inner = self.lock();
        let (stored, _, at) = inner.kept.get(id)?;
        self.live(stored, *at, owner, now).then(|| Arc::clone(stored))
    }

    /// Whether `stored`, kept at `at`, is `owner`'s and has not expired by `now`.
    fn live(&self, stored: &Stored, at: Instant, owner: Option<&str>, now: Instant) -> bool {
        stored.owner.as_deref() == owner && now.saturating_duration_since(at) < self.ttl
    }

    /// Forgets the response kept under `id` for `owner`; whether there was one.
    pub(crate) fn remove(&self, id: &str, owner: Option<&str>) -> bool {
        self.remove_at(id, owner, Instant::now())
    }

    /// Forgets the response kept under `id` for `owner`, unless it expired (then it is not found,
    /// as by [`get`](Self::get)).
    fn remove_at(&self, id: &str, owner: Option<&str>, now: Instant) -> bool {
        let mut inner = self.lock();
        if inner.kept.get(id).is_some_and(|(stored, _, at)| self.live(stored, *at, owner, now)) {
            inner.drop_id(id)
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    #[allow(clippy::disallowed_methods, reason = "the waiter runs on a task of its own")]
    async fn writes_are_waited_for_until_the_last_one_ends() {
        let writes = Arc::new(Writes::default());
        writes.idle().await;
        let (a, b) = (writes.start(), writes.start());
        assert_eq!(writes.in_flight(), 2);
        let waiting = tokio::spawn({
            let writes = Arc::clone(&writes);
            async move { writes.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one write is still under way");
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(writes.in_flight(), 0);
    }

    fn stored(owner: &str, text: &str) -> Stored {
        Stored { owner: Some(owner.to_owned()), conversation: vec![Message::user(text)], object: json!({"id": text}) }
    }

    #[test]
    fn responses_are_kept_for_their_owner_until_they_expire_or_make_room() {
        let store = ResponseStore::new(2, 1 << 20, Duration::from_secs(60));
        let t0 = Instant::now();
        store.put_at("r1".into(), stored("a", "one"), t0);
        store.put_at("r2".into(), stored("a", "two"), t0);
        assert_eq!(store.get_at("r1", Some("a"), t0).unwrap().object["id"], "one");
        // Another caller's response is not found; nor is one without an owner.
        assert!(store.get_at("r1", Some("b"), t0).is_none());
        assert!(store.get_at("r1", None, t0).is_none());
        // A third pushes the oldest out.
        store.put_at("r3".into(), stored("a", "three"), t0);
        assert!(store.get_at("r1", Some("a"), t0).is_none());
        assert!(store.get_at("r2", Some("a"), t0).is_some());
        // Expired: not found, nor removed, and dropped when the next is kept.
        let later = t0 + Duration::from_secs(61);
        assert!(store.get_at("r3", Some("a"), later).is_none());
        assert!(!store.remove_at("r3", Some("a"), later));
        store.put_at("r4".into(), stored("a", "four"), later);
        assert_eq!(store.lock().kept.len(), 1);
        // Only the owner removes it.
        assert!(!store.remove("r4", Some("b")));
        assert!(store.remove("r4", Some("a")));
        assert!(store.get_at("r4", Some("a"), later).is_none());
        assert_eq!(store.lock().bytes, 0);
    }

    #[test]
    fn the_bytes_bound_what_is_kept() {
        let one = stored("a", &"x".repeat(1000));
        let size = one.size();
        let store = ResponseStore::new(100, 2 * size + size / 2, Duration::from_secs(60));
        let t0 = Instant::now();
        for id in ["r1", "r2", "r3"] {
            store.put_at(id.into(), stored("a", &"x".repeat(1000)), t0);
        }
        // Room for two: the oldest went.
        assert!(store.get_at("r1", Some("a"), t0).is_none());
        assert!(store.get_at("r3", Some("a"), t0).is_some());
        assert_eq!(store.lock().bytes, 2 * size);
        // One larger than all the bytes is not kept, and pushes nothing out.
        store.put_at("big".into(), stored("a", &"x".repeat(10_000)), t0);
        assert!(store.get_at("big", Some("a"), t0).is_none());
        assert!(store.get_at("r2", Some("a"), t0).is_some());
    }

    #[test]
    fn removed_ids_do_not_pile_up() {
        let store = ResponseStore::new(10, 1 << 20, Duration::from_secs(3600));
        let t0 = Instant::now();
        store.put_at("keep".into(), stored("a", "kept"), t0);
        for i in 0..10_000 {
            let id = format!("r{i}");
            store.put_at(id.clone(), stored("a", "gone"), t0);
            assert!(store.remove(&id, Some("a")));
        }
        let inner = store.lock();
        assert_eq!(inner.kept.len(), 1);
        assert!(inner.order.len() <= 20, "{}", inner.order.len());
    }

    #[test]
    fn a_kept_conversation_reads_back_from_its_shared_document_as_it_was() {
        let mut answer = Message::assistant("");
        answer.content.clear();
        answer.tool_calls.push(switchyard::ToolCall::new("call_1", "weather", "{\"city\":\"Paris\"}"));
        let conversation = vec![
            Message::user("What is this?")
                .with_part(ContentPart::image("https://example.com/a.png", switchyard::ImageDetail::Low)),
            answer,
            Message::tool_result("call_1", "Sunny."),
            Message::assistant("It is sunny in Paris."),
        ];
        let kept = Stored { owner: Some("a".into()), conversation: conversation.clone(), object: json!({"id": "r1"}) };
        let read: Stored = serde_json::from_slice(&serde_json::to_vec(&kept).unwrap()).unwrap();
        assert_eq!(
            (read.owner.as_deref(), read.conversation, read.object),
            (Some("a"), conversation, json!({"id": "r1"}))
        );
    }

    #[test]
    fn a_store_of_no_capacity_keeps_nothing() {
        let store = ResponseStore::new(0, 1 << 20, Duration::from_secs(60));
        store.put("r1".into(), stored("a", "one"));
        assert!(store.get("r1", Some("a")).is_none());
    }
}
