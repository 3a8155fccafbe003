//! [`CheapestCapable`]: the least expensive model that clears a quality floor.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::policy::{Candidate, Policy, PolicyInput, Ranking, check_unit};

/// Picks the cheapest candidate whose `p(m)` reaches a quality floor.
///
/// 1. The floor is the request's [`quality_floor`](crate::RouteHints::quality_floor) when it sets one,
///    else the policy's.
/// 2. Candidates with `p ≥ floor` come first, cheapest first (ties: higher `p`, then catalog order).
/// 3. The others follow, most likely to succeed first; so when nothing reaches the floor, the model
///    with the highest `p` serves.
///
/// The score in the ranking is `p`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheapestCapable {
    floor: f64,
}

impl CheapestCapable {
    /// A policy with quality floor `floor`, in `[0, 1]` (checked when the router is built).
    pub fn new(floor: f64) -> Self {
        Self { floor }
    }
}

impl Default for CheapestCapable {
    fn default() -> Self {
        Self::new(0.8)
    }
}

impl Policy for CheapestCapable {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        let floor = input.request.hints.quality_floor.unwrap_or(self.floor);
        let key = |c: &Candidate| (c.p < floor, if c.p >= floor { c.cost.usd } else { -c.p }, -c.p, c.model);
        let mut order: smallvec::SmallVec<[&Candidate; 8]> = input.candidates.iter().collect();
        order.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.total_cmp(&kb.2)).then(ka.3.cmp(&kb.3))
        });
        let mut ranking = Ranking::new();
        for c in order {
            ranking.push(c.model, c.p);
        }
        if ranking.order().first().is_some_and(|s| s.score < floor) {
            ranking = ranking.with_note(format!("no candidate reaches the quality floor {floor:.2}"));
        }
        Ok(ranking)
    }

    fn name(&self) -> &str {
        "cheapest-capable"
    }

    fn validate(&self, _: &Catalog) -> Result<()> {
        check_unit("cheapest-capable `quality_floor`", self.floor)
    }
}
