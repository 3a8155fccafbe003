//! Settling reservations, and what waits for the store meanwhile: settlements, local spending and
//! circuit flags, sent with the next admission or by a scheduled flush.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::backlog::Backlog;
use super::{Limiter, lock};
use crate::catalog::ModelIndex;
use crate::error::Result;
use crate::state::{Admit, Counter, Flag, Settlement};

impl Limiter {
    /// Whether nothing waits to be sent to the store (settlements, local spending, flags).
    pub(super) fn quiet(&self) -> bool {
        !self.queued.load(Ordering::Acquire) || {
            // Cleared before looking, and set again by whoever queues after: never lost.
            self.queued.store(false, Ordering::Release);
            let empty =
                lock(&self.pending).is_empty() && lock(&self.backlog).is_empty() && lock(&self.flags).is_empty();
            if !empty {
                self.queued.store(true, Ordering::Release);
            }
            empty
        }
    }

    /// Tells the other replicas that `model`'s circuit opened here, for `open_for`; sent with the
    /// next admission, or by itself after [`LimitsConfig::flush_after`](crate::limits::LimitsConfig::flush_after).
    pub(crate) fn publish_open(self: &Arc<Self>, model: ModelIndex, open_for: Duration) {
        if !self.config.share_circuits || open_for.is_zero() {
            return;
        }
        let Some(name) = self.circuit_flags.get(model) else { return };
        // Once per opening: a failure recorded while the circuit is open publishes nothing new.
        let until = self.elapsed_ms().saturating_add(u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX));
        if let Some(published) = self.published.get(model) {
            let before = published.load(Ordering::Acquire);
            if before.saturating_add(1000) >= until
                || published.compare_exchange(before, until, Ordering::AcqRel, Ordering::Acquire).is_err()
            {
                return;
            }
        }
        let mut flags = lock(&self.flags);
        match flags.iter_mut().find(|f| f.name == *name) {
            Some(f) => f.ttl = f.ttl.max(open_for),
            None => flags.push(Flag { name: name.clone(), ttl: open_for }),
        }
        drop(flags);
        self.queued_for_store();
    }

    /// Settles a reservation made through [`admit_first`](Self::admit_first), which only an
    /// in-process store makes.
    pub(super) fn settle_reserved(&self, id: u64, actual: &[f64]) {
        if let Some(store) = self.store.memory() {
            store.settle_reserved(id, actual);
        }
    }

    /// Settles a reservation: at once for the local counters or an in-process store, otherwise with
    /// the next admission (or a scheduled flush).
    pub(super) fn settle(self: &Arc<Self>, settlement: Settlement, local: bool) {
        if local {
            // Spending under local counters goes to the store once it answers again.
            let spent: Vec<(Counter, f64)> = settlement
                .lease
                .charges
                .iter()
                .zip(&settlement.actual)
                .filter(|(_, a)| **a != 0.0)
                .map(|((c, _), a)| (c.clone(), *a))
                .collect();
            self.local.settle_sync(std::slice::from_ref(&settlement));
            lock(&self.backlog).add(spent);
            self.queued_for_store();
        } else if let Some(store) = self.store.memory() {
            store.settle_recent(&settlement);
        } else {
            lock(&self.pending).push(settlement);
            self.queued_for_store();
        }
    }

    /// Sends queued settlements, local spending and flags to the store now.
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut admit = Admit::default();
        let backlog = self.take_queued(&mut admit);
        if admit.settle.is_empty() && admit.flags.is_empty() {
            return Ok(());
        }
        let result = match tokio::time::timeout(self.config.store_timeout, self.store.admit(&admit)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(self.timeout_error()),
        };
        if result.is_err() {
            lock(&self.pending).extend(admit.settle.into_iter().filter(Settlement::is_reserved));
            lock(&self.flags).extend(admit.flags);
            lock(&self.backlog).put_back(backlog);
            self.queued.store(true, Ordering::Release);
        }
        result
    }

    /// Moves what waits for the store into `admit`: queued settlements, flags, and local spending
    /// (its batches returned as well, to be put back if the store fails: the store applies each
    /// batch once, so one sent again after a call that got no answer is not counted twice).
    pub(super) fn take_queued(&self, admit: &mut Admit) -> Backlog {
        self.drained.fetch_add(1, Ordering::AcqRel);
        admit.settle = std::mem::take(&mut *lock(&self.pending));
        admit.flags = std::mem::take(&mut *lock(&self.flags));
        let (backlog, batches) = lock(&self.backlog).take();
        admit.settle.extend(batches);
        backlog
    }

    /// Notes that something waits for the store, and schedules a flush for when it has waited
    /// [`LimitsConfig::flush_after`](crate::limits::LimitsConfig::flush_after) without an admission to carry it.
    pub(super) fn queued_for_store(self: &Arc<Self>) {
        self.queued.store(true, Ordering::Release);
        let after = self.config.flush_after;
        if after.is_zero() || self.store.memory().is_some() || self.flush_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Without a runtime (a ticket dropped outside one), the next admission carries it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.flush_armed.store(false, Ordering::Release);
            return;
        };
        let limiter = Arc::downgrade(self);
        let mut seen = self.drained.load(Ordering::Acquire);
        #[expect(clippy::disallowed_methods, reason = "documented in `Router`'s background tasks")]
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(after).await;
                // A router dropped meanwhile has nothing left to send.
                let Some(l) = limiter.upgrade() else { return };
                // Taken since: an admission carried what waited then, and anything queued later
                // gets its own wait.
                if l.drained.load(Ordering::Acquire) == seen && !l.store_is_down()
                    && let Err(e) = l.flush().await {
                        tracing::warn!(store = l.store.name(), error = %e, "state store failed; settlements kept for the next call");
                        l.mark_down();
                    }
                l.flush_armed.store(false, Ordering::Release);
                // Re-armed here unless nothing waits or another call armed it after the line above.
                if l.quiet() || l.flush_armed.swap(true, Ordering::AcqRel) {
                    return;
                }
                seen = l.drained.load(Ordering::Acquire);
            }
        });
    }
}
