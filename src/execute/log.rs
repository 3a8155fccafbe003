//! Recent decisions, so that [`Router::feedback`](crate::Router::feedback) can find them: a fixed ring
//! of slots written without locks, so that recording a decision costs a few atomic stores.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::catalog::ModelIndex;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::Memo;
use crate::types::DecisionId;

/// Bit of a slot's state word: the router executed the decision (`complete` or `stream`), so its
/// attempts are already in the health statistics.
const EXECUTED: u64 = 1 << 62;
/// Bit of a slot's state word: feedback was recorded.
const CONSUMED: u64 = 1 << 63;
/// Low bits of a slot's state word: the model index (catalogs have far fewer than 2^24 models).
const MODEL: u64 = (1 << 24) - 1;
/// Bits 24 to 61 of a slot's state word: the low bits of the decision id, so that a state word
/// always says which decision it belongs to.
const TAG_SHIFT: u32 = 24;
const TAG: u64 = ((1 << 38) - 1) << TAG_SHIFT;

fn tag(id: u64) -> u64 {
    (id << TAG_SHIFT) & TAG
}

struct Slot {
    /// The decision id in this slot; 0 while empty or being written.
    id: AtomicU64,
    /// The model index, the id tag and the flags above.
    state: AtomicU64,
    /// When the decision was made, in nanoseconds since the log's base.
    at: AtomicU64,
    /// The ranking's [`Memo`], for [`Policy::observe`](crate::Policy::observe).
    memo: AtomicU64,
    /// [`DecisionLog::owner`] of the request's key; 0 without one.
    owner: AtomicU64,
}

/// What the log knows about a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) model: ModelIndex,
    pub(crate) executed: bool,
    pub(crate) memo: Memo,
}

pub(crate) struct DecisionLog {
    slots: Box<[Slot]>,
    next: AtomicU64,
    base: Instant,
    ttl: Duration,
    /// The keyed hash of owner tags: random per log, so that no caller can choose a key whose tag
    /// matches another's.
    seed: RandomState,
}

impl DecisionLog {
    pub(crate) fn new(capacity: u32, ttl: Duration, base: Instant) -> Self {
        let slots = (0..capacity.max(1))
            .map(|_| Slot {
                id: AtomicU64::new(0),
                state: AtomicU64::new(0),
                at: AtomicU64::new(0),
                memo: AtomicU64::new(0),
                owner: AtomicU64::new(0),
            })
            .collect();
        Self { slots, next: AtomicU64::new(1), base, ttl, seed: RandomState::new() }
    }

    /// A key's owner tag: its hash under this log's random seed, never 0; 0 without a key.
    fn owner(&self, key: Option<&str>) -> u64 {
        key.map_or(0, |k| self.seed.hash_one(k).max(1))
    }

    fn slot(&self, id: u64) -> &Slot {
        // `slots` is never empty.
        &self.slots[(id % self.slots.len() as u64) as usize]
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a new decision, made for a request with this key (if any), and returns its id.
    /// Overwrites the oldest slot.
    pub(crate) fn issue(
        &self,
        model: ModelIndex,
        executed: bool,
        memo: Memo,
        key: Option<&str>,
        now: Instant,
    ) -> DecisionId {
        let owner = self.owner(key);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = self.slot(id);
        slot.id.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        let flags = if executed { EXECUTED } else { 0 };
        slot.state.store((model as u64 & MODEL) | tag(id) | flags, Ordering::Relaxed);
        slot.at.store(self.nanos(now), Ordering::Relaxed);
        slot.memo.store(memo.get(), Ordering::Relaxed);
        slot.owner.store(owner, Ordering::Relaxed);
        slot.id.store(id, Ordering::Release);
        DecisionId(id)
    }

    /// Records which model finally answered an executed decision (a fallback may have replaced the
    /// first choice).
    pub(crate) fn set_model(&self, id: DecisionId, model: ModelIndex) {
        let slot = self.slot(id.0);
        let _ = slot.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
            (s & TAG == tag(id.0)).then_some((s & !MODEL) | (model as u64 & MODEL))
        });
    }

    /// Finds `id` and marks it as having feedback, from the caller with key `from` (`None`: the
    /// service itself, which may give feedback on any decision).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] when the id was never issued (or, for a caller, was issued for
    /// another key: the same message, and the decision keeps its chance of feedback), has expired
    /// (overwritten or older than the time to live) or already has feedback.
    pub(crate) fn consume(&self, id: DecisionId, from: Option<&str>, now: Instant) -> Result<Logged> {
        let unknown = || Error::new(ErrorKind::InvalidRequest, format!("unknown decision id {id}"));
        let expired = || {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("decision {id} has expired (feedback is kept for the last {} decisions)", self.slots.len()),
            )
        };
        if id.0 == 0 || id.0 >= self.next.load(Ordering::Relaxed) {
            return Err(unknown());
        }
        let slot = self.slot(id.0);
        if slot.id.load(Ordering::Acquire) != id.0 {
            return Err(expired());
        }
        let at = slot.at.load(Ordering::Relaxed);
        let memo = Memo::new(slot.memo.load(Ordering::Relaxed));
        let owner = slot.owner.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.id.load(Ordering::Relaxed) != id.0 {
            return Err(expired());
        }
        if from.is_some_and(|from| self.owner(Some(from)) != owner) {
            return Err(unknown());
        }
        let age = Duration::from_nanos(self.nanos(now).saturating_sub(at));
        if age > self.ttl {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "decision {id} has expired ({} s old, feedback is kept for {} s)",
                    age.as_secs(),
                    self.ttl.as_secs()
                ),
            ));
        }
        let state = slot
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & TAG == tag(id.0) && s & CONSUMED == 0).then_some(s | CONSUMED)
            })
            .map_err(|s| {
                if s & TAG == tag(id.0) {
                    Error::new(ErrorKind::InvalidRequest, format!("decision {id} already has feedback"))
                } else {
                    expired()
                }
            })?;
        Ok(Logged { model: (state & MODEL) as ModelIndex, executed: state & EXECUTED != 0, memo })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_finds_recent_decisions_once() {
        let base = Instant::now();
        let log = DecisionLog::new(4, Duration::from_secs(60), base);
        let a = log.issue(3, false, Memo::new(7), None, base);
        let b = log.issue(1, true, Memo::NONE, None, base);
        log.set_model(b, 2);
        assert_eq!(log.consume(a, None, base).unwrap(), Logged { model: 3, executed: false, memo: Memo::new(7) });
        assert_eq!(log.consume(b, None, base).unwrap(), Logged { model: 2, executed: true, memo: Memo::NONE });
        let again = log.consume(a, None, base).unwrap_err();
        assert!(again.to_string().contains("already has feedback"), "{again}");
        assert!(log.consume(DecisionId(99), None, base).unwrap_err().to_string().contains("unknown"));
        assert!(log.consume(DecisionId(0), None, base).unwrap_err().to_string().contains("unknown"));
    }

    #[test]
    fn a_callers_feedback_finds_only_its_own_decisions() {
        let base = Instant::now();
        let log = DecisionLog::new(8, Duration::from_secs(60), base);
        let (a, b) = (Some("team-a"), Some("team-b"));
        assert!(log.owner(a) != log.owner(b) && log.owner(a) != 0 && log.owner(b) != 0 && log.owner(None) == 0);
        let of_a = log.issue(1, true, Memo::NONE, a, base);
        let anonymous = log.issue(1, true, Memo::NONE, None, base);
        // Another caller's feedback: unknown, as an id never issued says, and it does not use up the
        // owner's chance to give feedback.
        let refused = log.consume(of_a, b, base).unwrap_err().to_string();
        assert_eq!(refused, format!("unknown decision id {of_a}"));
        assert!(log.consume(anonymous, a, base).is_err());
        assert!(log.consume(of_a, a, base).is_ok());
        // The service itself (no key) may give feedback on any decision.
        assert!(log.consume(anonymous, None, base).is_ok());
        let other = log.issue(1, true, Memo::NONE, b, base);
        assert!(log.consume(other, None, base).is_ok());
    }

    #[test]
    fn old_decisions_expire_by_count_and_by_age() {
        let base = Instant::now();
        let log = DecisionLog::new(2, Duration::from_secs(10), base);
        let first = log.issue(0, false, Memo::NONE, None, base);
        let second = log.issue(0, false, Memo::NONE, None, base);
        let _third = log.issue(0, false, Memo::NONE, None, base);
        assert!(log.consume(first, None, base).unwrap_err().to_string().contains("expired"));
        let late = base + Duration::from_secs(11);
        assert!(log.consume(second, None, late).unwrap_err().to_string().contains("expired"));
    }

    #[test]
    fn concurrent_issue_and_consume_stay_consistent() {
        let base = Instant::now();
        let log = DecisionLog::new(64, Duration::from_secs(60), base);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let log = &log;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        let id = log.issue(t, false, Memo::new(t as u64), None, base);
                        // Another thread may have overwritten the slot: then the id has expired, and
                        // is never reported with another decision's model or as already consumed.
                        match log.consume(id, None, base) {
                            Ok(found) => {
                                assert_eq!(found.model, t);
                                assert_eq!(found.memo, Memo::new(t as u64));
                            }
                            Err(e) => assert!(e.to_string().contains("expired"), "{e}"),
                        }
                    }
                });
            }
        });
    }
}
