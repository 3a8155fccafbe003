//! Learned state that replicas add up through the router's state store: experiments' statistics
//! and bandits' evidence ([`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning)).
//!
//! Everything shared is a sum: a count, a sum of values, a sum of squares. Each replica keeps what
//! it observed since its last sync apart; a sync adds those amounts to the store's counters and
//! reads back the totals of every replica in the same round trip. An experiment's report and its
//! sequential tests then run on the fleet's totals (plus what was observed here since); a bandit's
//! posteriors hold the fleet's evidence of its shared window.

use std::fmt;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::stats::Welford;
use super::{Assignment, Bandit, ExperimentHandle, Fleet, Group, HOLDOUT, SequentialTest, StatsState, TestState};
use crate::policy::Outcome;
use crate::state::Counter;

/// Sums kept per experiment group (arm or holdout): decisions routed, feedback, successes, then
/// count, sum and sum of squares of quality, cost, latency (ms) and the test's metric.
pub(crate) const GROUP_FIELDS: usize = 15;
const FIELD_NAMES: [&str; GROUP_FIELDS] = [
    "routed",
    "feedback",
    "successes",
    "q.n",
    "q.s",
    "q.ss",
    "c.n",
    "c.s",
    "c.ss",
    "l.n",
    "l.s",
    "l.ss",
    "m.n",
    "m.s",
    "m.ss",
];
const ROUTED: usize = 0;

/// How long shared sums outlive their last sync: an experiment or bandit that no replica runs any
/// more leaves nothing in the store after that.
pub(crate) const KEPT_UNUSED: Duration = Duration::from_secs(30 * 86_400);

/// A policy's learned state that replicas can share through the router's state store: an
/// [`Experiment`](super::Experiment)'s statistics or a [`Bandit`]'s evidence. Policies list theirs
/// with [`Policy::learning`](crate::Policy::learning); the router syncs them.
#[derive(Clone)]
pub struct Learning(Kind);

#[derive(Clone)]
enum Kind {
    Experiment(ExperimentHandle),
    Bandit(Bandit),
}

impl fmt::Debug for Learning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// What a sync took from a [`Learning`]: its sums since the last sync.
pub(crate) struct Taken(Vec<f64>);

impl Learning {
    pub(crate) fn experiment(handle: ExperimentHandle) -> Self {
        Self(Kind::Experiment(handle))
    }

    pub(crate) fn bandit(bandit: Bandit) -> Self {
        Self(Kind::Bandit(bandit))
    }

    /// What it is, for errors and logs: ``experiment `name` `` or ``bandit `name` ``.
    pub(crate) fn label(&self) -> String {
        match &self.0 {
            Kind::Experiment(e) => format!("experiment `{}`", e.name()),
            Kind::Bandit(b) => format!("bandit `{}`", b.label()),
        }
    }

    /// Takes the sums observed here since the last sync.
    pub(crate) fn take(&self) -> Taken {
        match &self.0 {
            Kind::Bandit(b) => Taken(b.take_pending()),
            Kind::Experiment(e) => {
                let sh = &*e.shared;
                let mut st = sh.stats.lock().unwrap_or_else(PoisonError::into_inner);
                let zero = vec![0.0; st.pending.len()];
                let mut taken = std::mem::replace(&mut st.pending, zero);
                // Decisions routed are counted without a lock: take their growth since last time.
                for (g, n) in sh.routed.iter().enumerate() {
                    let now = n.load(Ordering::Relaxed);
                    let before = std::mem::replace(&mut st.routed_taken[g], now);
                    taken[g * GROUP_FIELDS + ROUTED] += now.saturating_sub(before) as f64;
                }
                Taken(taken)
            }
        }
    }

    /// Gives back what [`take`](Self::take) took, when the store did not answer.
    pub(crate) fn restore(&self, taken: Taken) {
        match &self.0 {
            Kind::Bandit(b) => b.restore_pending(&taken.0),
            Kind::Experiment(e) => {
                let mut st = e.shared.stats.lock().unwrap_or_else(PoisonError::into_inner);
                for (x, t) in st.pending.iter_mut().zip(&taken.0) {
                    *x += t;
                }
            }
        }
    }

    /// What `taken` adds to which shared counter at `now_ms`.
    pub(crate) fn charges(&self, taken: &Taken, now_ms: u64, out: &mut Vec<(Counter, f64)>) {
        match &self.0 {
            Kind::Bandit(b) => b.charges(&taken.0, now_ms, out),
            Kind::Experiment(e) => {
                for (i, &x) in taken.0.iter().enumerate().filter(|(_, x)| **x != 0.0) {
                    out.push((experiment_counter(e, i), x));
                }
            }
        }
    }

    /// The counters whose fleet-wide values a sync reads at `now_ms`.
    pub(crate) fn counters(&self, now_ms: u64, out: &mut Vec<Counter>) {
        match &self.0 {
            Kind::Bandit(b) => b.counters(now_ms, out),
            Kind::Experiment(e) => {
                let n = e.shared.stats.lock().unwrap_or_else(PoisonError::into_inner).pending.len();
                out.extend((0..n).map(|i| experiment_counter(e, i)));
            }
        }
    }

    /// Installs the values read for [`counters`](Self::counters) at `now_ms`.
    pub(crate) fn install(&self, values: &[f64], now_ms: u64) {
        match &self.0 {
            Kind::Bandit(b) => b.install(values, now_ms),
            Kind::Experiment(e) => {
                let sh = &*e.shared;
                let mut st = sh.stats.lock().unwrap_or_else(PoisonError::into_inner);
                if values.len() != st.pending.len() {
                    return;
                }
                let groups = groups_from(values, None);
                // The sequential tests watch the fleet's statistics at every sync: a subsequence of
                // continuous monitoring, which keeps their error guarantee.
                let mut tests =
                    st.fleet.as_ref().map_or_else(|| vec![TestState::default(); st.tests.len()], |f| f.tests.clone());
                super::update_comparisons(&groups, &mut tests, 0, &sh.test);
                st.fleet = Some(Fleet { totals: values.to_vec(), tests });
            }
        }
    }
}

/// The counter of sum `i` of an experiment's pending layout: `exp:{experiment}:{arm}:{field}`, and
/// the unkeyed and killed counts after the groups. They expire [`KEPT_UNUSED`] after the last sync
/// that listed them.
fn experiment_counter(e: &ExperimentHandle, i: usize) -> Counter {
    let sh = &*e.shared;
    let groups = sh.arms.len() + 1;
    let key = if i < groups * GROUP_FIELDS {
        let (g, f) = (i / GROUP_FIELDS, i % GROUP_FIELDS);
        let arm = sh.arms.get(g).map_or(HOLDOUT, |a| &a.name);
        format!("exp:{}:{arm}:{}", sh.name, FIELD_NAMES[f])
    } else if i == groups * GROUP_FIELDS {
        format!("exp:{}:unkeyed", sh.name)
    } else {
        format!("exp:{}:killed", sh.name)
    };
    Counter::idle(key, KEPT_UNUSED)
}

/// Adds an outcome to an experiment's pending sums.
pub(crate) fn record(pending: &mut [f64], how: Assignment, group: usize, outcome: &Outcome<'_>, test: &SequentialTest) {
    let tail = pending.len().saturating_sub(2);
    match how {
        Assignment::Unkeyed => pending[tail] += 1.0,
        Assignment::Killed => pending[tail + 1] += 1.0,
        Assignment::Assigned | Assignment::Holdout => {
            let Some(g) = pending.get_mut(group * GROUP_FIELDS..(group + 1) * GROUP_FIELDS) else { return };
            let f = outcome.feedback;
            g[1] += 1.0;
            g[2] += f64::from(u8::from(f.success));
            let mut moments = |at: usize, x: Option<f64>| {
                if let Some(x) = x.filter(|x| x.is_finite()) {
                    g[at] += 1.0;
                    g[at + 1] += x;
                    g[at + 2] += x * x;
                }
            };
            moments(3, Some(outcome.quality()));
            moments(6, f.cost_usd);
            moments(9, f.latency.map(|l| l.as_secs_f64() * 1000.0));
            moments(12, test.metric.value(outcome));
        }
    }
}

/// Groups from sums laid out as [`GROUP_FIELDS`] per group, plus `more` added field by field.
fn groups_from(sums: &[f64], more: Option<&[f64]>) -> Vec<Group> {
    let at = |i: usize| sums.get(i).copied().unwrap_or(0.0) + more.and_then(|m| m.get(i)).copied().unwrap_or(0.0);
    let count = |x: f64| if x.is_finite() && x > 0.0 { x.round() as u64 } else { 0 };
    let groups = sums.len().saturating_sub(2) / GROUP_FIELDS;
    (0..groups)
        .map(|g| {
            let b = g * GROUP_FIELDS;
            let w = |k: usize| Welford::from_sums(at(b + k), at(b + k + 1), at(b + k + 2));
            Group {
                feedback: count(at(b + 1)),
                successes: count(at(b + 2)),
                quality: w(3),
                cost: w(6),
                latency: w(9),
                metric: w(12),
            }
        })
        .collect()
}

/// The statistics an experiment reports with shared learning: the fleet's `totals` at the last sync
/// plus what was observed here since (`pending`), with the fleet's comparisons.
pub(crate) fn fleet_state(totals: &[f64], pending: &[f64], tests: Vec<TestState>) -> StatsState {
    let tail = totals.len().saturating_sub(2);
    let count = |i: usize| {
        let x = totals.get(i).copied().unwrap_or(0.0) + pending.get(i).copied().unwrap_or(0.0);
        if x.is_finite() && x > 0.0 { x.round() as u64 } else { 0 }
    };
    StatsState {
        groups: groups_from(totals, Some(pending)),
        unkeyed: count(tail),
        killed: count(tail + 1),
        tests,
        pending: Vec::new(),
        routed_taken: Vec::new(),
        fleet: None,
    }
}

/// Decisions routed to `group` across the fleet: the total at the last sync plus this replica's
/// growth since.
pub(crate) fn fleet_routed(totals: &[f64], group: usize, local: u64, taken: u64) -> u64 {
    let total = totals.get(group * GROUP_FIELDS + ROUTED).copied().unwrap_or(0.0);
    let total = if total.is_finite() && total > 0.0 { total.round() as u64 } else { 0 };
    total + local.saturating_sub(taken)
}
