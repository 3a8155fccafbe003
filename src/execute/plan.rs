//! Which candidate to try next: the decision's ranking, narrowed by what went wrong so far (a context
//! overflow, an inadequate answer) and, when limits are set, by what they admit.

use smallvec::SmallVec;
use tokio::time::Instant;

use crate::catalog::ModelIndex;
use crate::execute::AttemptReason;
use crate::limits::Admission as LimitsAdmission;
use crate::limits::CallerLimits;
use crate::policy::{Candidate, Decision, RejectReason, sigmoid};
use crate::request::Request;

use super::engine::{Run, now_std};

/// The order in which a decision's candidates are tried.
pub(super) struct Plan<'a> {
    decision: &'a Decision,
    tried: Vec<bool>,
    /// After an escalation, only candidates predicted to answer better than this may answer.
    floor: f64,
    /// After a context overflow, only candidates with a larger context window than this may answer.
    min_window: u32,
}

impl<'a> Plan<'a> {
    pub(super) fn new(decision: &'a Decision) -> Self {
        Self { decision, tried: vec![false; decision.catalog().len()], floor: f64::NEG_INFINITY, min_window: 0 }
    }

    /// The predicted quality of `model`'s answer: `σ(logit)`, without the live success rate (which
    /// says whether a call goes through, not how good its answer is).
    fn p(&self, model: ModelIndex) -> f64 {
        self.decision.candidates().iter().find(|c| c.model == model).map_or(0.0, |c| sigmoid(c.logit))
    }

    fn window(&self, model: ModelIndex) -> u32 {
        self.decision.catalog().model(model).context_window
    }

    fn mark(&mut self, model: ModelIndex) {
        if let Some(t) = self.tried.get_mut(model) {
            *t = true;
        }
    }

    /// The untried models in ranking order that satisfy `ok` (and the escalation and window floors).
    fn eligible(&self, ok: impl Fn(&Self, ModelIndex) -> bool) -> SmallVec<[ModelIndex; 16]> {
        self.decision
            .ranking()
            .iter()
            .map(|s| s.model)
            .filter(|&m| {
                !self.tried.get(m).copied().unwrap_or(true)
                    && self.window(m) > self.min_window
                    && (self.floor == f64::NEG_INFINITY || self.p(m) > self.floor)
                    && ok(self, m)
            })
            .collect()
    }

    /// The models that may be tried next, in order, for `pick`, and the reason for an attempt.
    fn options(&mut self, pick: Pick) -> (SmallVec<[ModelIndex; 16]>, AttemptReason) {
        match pick {
            Pick::First => (self.eligible(|_, _| true), first_reason(self.decision)),
            Pick::Next => (self.eligible(|_, _| true), AttemptReason::Fallback),
            // Only candidates with a larger window from then on (a smaller one would overflow too).
            Pick::LargerWindow(model) => {
                self.min_window = self.min_window.max(self.window(model));
                (self.eligible(|_, _| true), AttemptReason::LargerContext)
            }
            // Only candidates predicted to answer better than `model` from then on.
            Pick::Stronger(model) => {
                let floor = self.p(model).max(self.floor);
                let list = self.eligible(|plan, m| plan.p(m) > floor);
                if !list.is_empty() {
                    self.floor = floor;
                }
                (list, AttemptReason::Escalation)
            }
        }
    }
}

/// Which candidate to try next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pick {
    /// The decision's first choice.
    First,
    /// The next candidate in ranking order.
    Next,
    /// The next candidate with a larger context window than this model's.
    LargerWindow(ModelIndex),
    /// The next candidate predicted to answer better than this model.
    Stronger(ModelIndex),
}

fn first_reason(decision: &Decision) -> AttemptReason {
    if decision.is_recovery() { AttemptReason::Recovery } else { AttemptReason::Primary }
}

impl Run<'_> {
    /// Settles the reservation of the model tried last, then picks the next model to try; with
    /// limits, the first of the eligible candidates that they allow.
    pub(super) async fn pick(&mut self, pick: Option<Pick>, request: &Request) -> Option<(ModelIndex, AttemptReason)> {
        if let Some(ticket) = self.ticket.take() {
            ticket.settle();
        }
        let (list, reason) = self.plan.options(pick?);
        let first = *list.first()?;
        let inner = self.engine;
        let Some(limiter) = &inner.limiter else {
            self.plan.mark(first);
            return Some((first, reason));
        };
        // When every circuit was open, the one closest to recovery is tried whatever other replicas say.
        let circuits = !self.decision.is_recovery();
        let first_pick = pick == Some(Pick::First);
        // A request counts once against caller rate limits: until a model has been called.
        let count = self.attempts.is_empty();
        let candidates = self.decision.candidates();
        let deadline_at = self.deadline.into_std();
        // The first pick follows the request's start closely enough to admit it at that time, which
        // spares a clock reading; later ones follow a provider call.
        let now = if first_pick { self.started.into_std() } else { now_std() };
        let quick = candidates.iter().find(|c| c.model == first).and_then(|c| {
            limiter.admit_first(request, &inner.catalog, c, first_pick, count, circuits, now, deadline_at)
        });
        // With the model admitted.
        let admitted = match quick {
            Some(admission) => Ok((admission, first)),
            None => {
                // Each model's candidate, looked up once per model rather than searched for per model.
                let mut by_model: SmallVec<[Option<&Candidate>; 32]> = smallvec::smallvec![None; inner.catalog.len()];
                for c in candidates {
                    if let Some(slot) = by_model.get_mut(c.model) {
                        *slot = Some(c);
                    }
                }
                let listed: SmallVec<[&Candidate; 16]> =
                    list.iter().filter_map(|&m| by_model.get(m).copied().flatten()).collect();
                let deadline = self.remaining().unwrap_or_default();
                let admitted =
                    match limiter.admit_now(request, &inner.catalog, &listed, first_pick, count, circuits, deadline) {
                        Some(admitted) => admitted,
                        None => {
                            limiter.admit(request, &inner.catalog, &listed, first_pick, count, circuits, deadline).await
                        }
                    };
                admitted.map(|a| {
                    let model = listed[a.position].model;
                    (a, model)
                })
            }
        };
        match admitted {
            Ok((LimitsAdmission { position: pos, ticket, sticky, blocked, caller }, model)) => {
                // The counting admission's reading; later ones refresh the tokens, which every
                // admission charges.
                // (The clock is read only when a caller limit applies.)
                match (count, caller) {
                    (true, caller) => self.caller = caller.map(|c| (c, Instant::now())),
                    (false, Some(later)) if later.tokens.is_some() => {
                        let read = Instant::now();
                        // The requests' reading ages from its own time.
                        let (mut c, at) = self.caller.unwrap_or((CallerLimits::default(), read));
                        c.requests = c.requests.map(|r| r.aged(read - at));
                        c.tokens = later.tokens;
                        self.caller = Some((c, read));
                    }
                    _ => {}
                }
                // Circuits another replica opened: open here too, for what is left of them.
                let blocked_count = blocked.len();
                for (model, left) in blocked {
                    inner.health.open_for(model, left, now_std());
                }
                self.plan.mark(model);
                self.ticket = Some(ticket);
                let reason = match reason {
                    AttemptReason::Primary if sticky && pos > 0 => AttemptReason::Sticky,
                    // Only open circuits stood in the way: as if those models had failed here.
                    AttemptReason::Primary if pos > 0 && blocked_count == pos => AttemptReason::Fallback,
                    AttemptReason::Primary if pos > 0 => AttemptReason::Downgrade,
                    other => other,
                };
                if pos > 0 && !sticky {
                    tracing::debug!(model = %inner.catalog.model(model).id, passed_over = pos, "limits passed over better-ranked candidates");
                }
                Some((model, reason))
            }
            Err(refused) => {
                let now = now_std();
                for r in refused.rejections() {
                    if let (RejectReason::CircuitOpen { retry_in }, Some(model)) =
                        (r.reason(), inner.catalog.index_of(r.model()))
                    {
                        inner.health.open_for(model, *retry_in, now);
                    }
                }
                tracing::debug!(
                    kind = refused.kind().as_str(),
                    store = limiter.store_name(),
                    "limits refused every candidate"
                );
                self.refused.extend(refused.rejections().iter().cloned());
                if self.attempts.is_empty() || self.last.is_none() {
                    self.last = Some(refused);
                }
                None
            }
        }
    }
}
