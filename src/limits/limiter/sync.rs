//! Calls on the store outside admissions: what budgets have spent, and the learned state the
//! replicas share.

use super::keys::scope_id;
use super::{Limiter, now_ms};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::BudgetStatus;
use crate::policy::experiment::Learning;
use crate::policy::experiment::shared::Taken;
use crate::state::{Admit, Settlement};

impl Limiter {
    /// What each budget that applies to `tenant` and `key` has spent and reserved.
    pub(crate) async fn status(&self, tenant: Option<&str>, key: Option<&str>) -> Result<Vec<BudgetStatus>> {
        let now = now_ms();
        let mut counters = Vec::new();
        let mut checks = Vec::new();
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(id) = scope_id(b, tenant, key) else { continue };
            let slot = b.window.slot(now);
            let (_, check) = self.budget_keys(i, id, &slot, |k| k.check(&mut counters, &slot, b.limit_usd));
            checks.push((b, slot, check));
        }
        let values = if self.store_is_down() {
            self.local.read_now(&counters)
        } else {
            match tokio::time::timeout(self.config.store_timeout, self.store.read(&counters)).await {
                Ok(Ok(values)) => values,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(self.timeout_error()),
            }
        };
        Ok(checks
            .into_iter()
            .map(|(b, slot, check)| {
                let spent = check.terms.iter().map(|&(i, w)| w * values.get(i as usize).copied().unwrap_or(0.0)).sum();
                BudgetStatus { label: b.label(), limit_usd: b.limit_usd, spent_usd: spent, resets_in: slot.resets_in }
            })
            .collect())
    }

    /// Adds what `learning` observed here since the last sync to the store's counters and installs
    /// the fleet's totals, in one round trip (an admission without choices). When the store fails,
    /// the sums are kept for the next sync.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store fails or does not answer in time.
    pub(crate) async fn sync_learning(&self, learning: &[Learning]) -> Result<()> {
        if learning.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let taken: Vec<Taken> = learning.iter().map(Learning::take).collect();
        let mut adds = Vec::new();
        let mut counters = Vec::new();
        let mut spans = Vec::with_capacity(learning.len());
        for (l, t) in learning.iter().zip(&taken) {
            l.charges(t, now, &mut adds);
            let start = counters.len();
            l.counters(now, &mut counters);
            spans.push(start..counters.len());
        }
        let settle = if adds.is_empty() { Vec::new() } else { vec![Settlement::unreserved(adds)] };
        let admit = Admit { counters, settle, ..Admit::default() };
        let answer = match tokio::time::timeout(self.config.store_timeout, self.store.admit(&admit)).await {
            Ok(Ok(admitted)) if admitted.values.len() == admit.counters.len() => Ok(admitted.values),
            Ok(Ok(admitted)) => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "state store `{}` returned {} values for {} counters",
                    self.store.name(),
                    admitted.values.len(),
                    admit.counters.len()
                ),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.timeout_error()),
        };
        match answer {
            Ok(values) => {
                for (l, span) in learning.iter().zip(spans) {
                    l.install(&values[span], now);
                }
                Ok(())
            }
            Err(e) => {
                for (l, t) in learning.iter().zip(taken) {
                    l.restore(t);
                }
                tracing::warn!(store = self.store.name(), error = %e, "sharing learned state failed; kept for the next sync");
                Err(e)
            }
        }
    }
}
