//! Spending recorded under local counters while the store failed, on its way to the store.

use std::collections::HashMap;

use crate::state::{Counter, Settlement};

/// Local spending for the store, in batches: one total per counter, and an id per batch that the
/// store applies at most once ([`Settlement::unreserved_once`]). A batch sent in a call that got no
/// answer may have been applied, so it goes again under the same id and is never merged with newer
/// spending, which goes into a batch not sent yet.
#[derive(Default)]
pub(super) struct Backlog {
    batches: Vec<Batch>,
}

struct Batch {
    id: u64,
    /// Sent at least once: its amounts are fixed.
    sent: bool,
    amounts: HashMap<Counter, f64>,
}

impl Backlog {
    /// Adds spending to the batch not sent yet (a new one when every batch has been sent).
    pub(super) fn add(&mut self, spent: impl IntoIterator<Item = (Counter, f64)>) {
        let mut spent = spent.into_iter().peekable();
        if spent.peek().is_none() {
            return;
        }
        if self.batches.last().is_none_or(|b| b.sent) {
            self.batches.push(Batch { id: batch_id(), sent: false, amounts: HashMap::new() });
        }
        if let Some(open) = self.batches.last_mut() {
            for (counter, amount) in spent {
                *open.amounts.entry(counter).or_insert(0.0) += amount;
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Every batch, marked sent, with their settlements to send.
    pub(super) fn take(&mut self) -> (Self, Vec<Settlement>) {
        let mut taken = std::mem::take(self);
        let settlements = taken
            .batches
            .iter_mut()
            .map(|b| {
                b.sent = true;
                Settlement::unreserved_once(b.id, b.amounts.iter().map(|(c, a)| (c.clone(), *a)))
            })
            .collect();
        (taken, settlements)
    }

    /// Puts batches taken for a call that failed back, before any spending added since.
    pub(super) fn put_back(&mut self, mut taken: Self) {
        taken.batches.append(&mut self.batches);
        self.batches = taken.batches;
    }
}

/// A batch id no other batch of any replica is likely to share: 63 random bits.
fn batch_id() -> u64 {
    super::random_bits() & !crate::state::ONCE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spending_is_summed_per_counter_and_a_batch_sent_keeps_its_id_and_amounts() {
        let (a, b) = (Counter::new("a", Duration::ZERO), Counter::new("b", Duration::ZERO));
        let mut backlog = Backlog::default();
        backlog.add([(a.clone(), 1.0), (b.clone(), 2.0)]);
        backlog.add([(a.clone(), 0.5)]);
        let (taken, sent) = backlog.take();
        assert!(backlog.is_empty());
        assert_eq!(sent.len(), 1);
        let first = sent[0].lease.id;
        assert!(first & crate::state::ONCE != 0 && !sent[0].is_reserved());
        let total = |s: &Settlement, c: &Counter| {
            s.lease.charges.iter().zip(&s.actual).filter(|((k, _), _)| k == c).map(|(_, x)| x).sum::<f64>()
        };
        assert_eq!((total(&sent[0], &a), total(&sent[0], &b)), (1.5, 2.0));
        // The call failed: newer spending goes into a new batch, after the one sent.
        backlog.add([(a.clone(), 4.0)]);
        backlog.put_back(taken);
        let (_, again) = backlog.take();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].lease.id, first, "sent again under its id");
        assert_eq!((total(&again[0], &a), total(&again[1], &a)), (1.5, 4.0));
        assert_ne!(again[1].lease.id, first);
    }
}
