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
        let sending = self.take_queued(Admit::default());
        if sending.admit.settle.is_empty() && sending.admit.flags.is_empty() {
            sending.done();
            return Ok(());
        }
        let result = match tokio::time::timeout(self.config.store_timeout, self.store.admit(&sending.admit)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(self.timeout_error()),
        };
        if result.is_ok() {
            sending.done();
        }
        result
    }

    /// Moves what waits for the store into `admit`: queued settlements, flags, and local spending,
    /// held by the returned [`Sending`] until the call is [`done`](Sending::done). A call that
    /// fails, or whose caller goes away while it waits, puts them back for the next (the store
    /// applies each batch of local spending once, so one sent again after a call that got no answer
    /// is not counted twice).
    pub(super) fn take_queued(&self, mut admit: Admit) -> Sending<'_> {
        self.drained.fetch_add(1, Ordering::AcqRel);
        admit.settle = std::mem::take(&mut *lock(&self.pending));
        admit.flags = std::mem::take(&mut *lock(&self.flags));
        let (backlog, batches) = lock(&self.backlog).take();
        admit.settle.extend(batches);
        Sending { limiter: self, admit, backlog: Some(backlog) }
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

/// An admission on its way to the store with what was queued for it ([`Limiter::take_queued`]).
/// Dropped before [`done`](Self::done) (the call failed, or its caller went away while it waited),
/// it puts the queued settlements, flags and local spending back, and gives back by id the lease the
/// admission named, which the store may have made.
pub(super) struct Sending<'a> {
    limiter: &'a Limiter,
    pub(super) admit: Admit,
    backlog: Option<Backlog>,
}

impl Sending<'_> {
    /// The store answered: nothing is put back. The admission, for its reply to be read with.
    pub(super) fn done(mut self) -> Admit {
        self.backlog = None;
        std::mem::take(&mut self.admit)
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        let Some(backlog) = self.backlog.take() else { return };
        let limiter = self.limiter;
        let mut pending = lock(&limiter.pending);
        pending.extend(std::mem::take(&mut self.admit.settle).into_iter().filter(Settlement::is_reserved));
        pending.extend(self.admit.lease_id.map(Settlement::release_id));
        drop(pending);
        lock(&limiter.flags).extend(std::mem::take(&mut self.admit.flags));
        lock(&limiter.backlog).put_back(backlog);
        limiter.queued.store(true, Ordering::Release);
    }
}
