//! Responses kept for `previous_response_id` and `GET /v1/responses/{id}` (`[server]
//! stored_responses`): in this process's memory, each for the caller that made it, for a while.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::Message;

/// One kept response: the conversation up to and including its answer (without the request's
/// `instructions`, which a follow-up does not inherit), and the response object as it was returned.
#[derive(Clone)]
pub(crate) struct Stored {
    /// The caller that made it (its virtual key's name); `None` without keys.
    pub(crate) owner: Option<String>,
    pub(crate) conversation: Vec<Message>,
    pub(crate) object: Value,
}

/// At most `capacity` responses, each for at most `ttl`; the oldest go first.
pub(crate) struct ResponseStore {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    kept: HashMap<String, (Stored, Instant)>,
    /// Ids in the order they were kept (ids already removed are skipped when met).
    order: VecDeque<String>,
}

impl ResponseStore {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity, ttl, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `stored` under `id`, dropping what expired and, beyond the capacity, the oldest.
    pub(crate) fn put(&self, id: String, stored: Stored) {
        self.put_at(id, stored, Instant::now());
    }

    fn put_at(&self, id: String, stored: Stored, now: Instant) {
        let mut inner = self.lock();
        let Inner { kept, order } = &mut *inner;
        while let Some(oldest) = order.front() {
            let gone = kept.get(oldest).is_none_or(|(_, at)| now.saturating_duration_since(*at) >= self.ttl);
            if !(gone || kept.len() >= self.capacity) {
                break;
            }
            if let Some(oldest) = order.pop_front() {
                kept.remove(&oldest);
            }
        }
        if self.capacity > 0 {
            order.push_back(id.clone());
            kept.insert(id, (stored, now));
        }
    }

    /// The response kept under `id` for `owner`, unless it expired. Another caller's is not found.
    pub(crate) fn get(&self, id: &str, owner: Option<&str>) -> Option<Stored> {
        self.get_at(id, owner, Instant::now())
    }

    fn get_at(&self, id: &str, owner: Option<&str>, now: Instant) -> Option<Stored> {
        let inner = self.lock();
        let (stored, at) = inner.kept.get(id)?;
        (stored.owner.as_deref() == owner && now.saturating_duration_since(*at) < self.ttl).then(|| stored.clone())
    }

    /// Forgets the response kept under `id` for `owner`; whether there was one.
    pub(crate) fn remove(&self, id: &str, owner: Option<&str>) -> bool {
        let mut inner = self.lock();
        if inner.kept.get(id).is_some_and(|(s, _)| s.owner.as_deref() == owner) {
            inner.kept.remove(id);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(owner: &str, text: &str) -> Stored {
        Stored { owner: Some(owner.to_owned()), conversation: vec![Message::user(text)], object: json!({"id": text}) }
    }

    #[test]
    fn responses_are_kept_for_their_owner_until_they_expire_or_make_room() {
        let store = ResponseStore::new(2, Duration::from_secs(60));
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
        // Expired: not found, and dropped when the next is kept.
        let later = t0 + Duration::from_secs(61);
        assert!(store.get_at("r3", Some("a"), later).is_none());
        store.put_at("r4".into(), stored("a", "four"), later);
        assert_eq!(store.lock().kept.len(), 1);
        // Only the owner removes it.
        assert!(!store.remove("r4", Some("b")));
        assert!(store.remove("r4", Some("a")));
        assert!(store.get_at("r4", Some("a"), later).is_none());
    }

    #[test]
    fn a_store_of_no_capacity_keeps_nothing() {
        let store = ResponseStore::new(0, Duration::from_secs(60));
        store.put("r1".into(), stored("a", "one"));
        assert!(store.get("r1", Some("a")).is_none());
    }
}
