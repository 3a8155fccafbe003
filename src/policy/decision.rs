//! [`Decision`]: the one source of truth for "why this model".

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::sync::Arc;

use smallvec::SmallVec;

use crate::catalog::{Catalog, ModelId, ModelIndex, ModelProfile, Resolved};
use crate::classify::sigmoid;
use crate::classify::{IntentScore, TokenEstimate};
use crate::cost::CostEstimate;
use crate::policy::Scored;
use crate::policy::experiment::ArmTag;
use crate::types::DecisionId;
pub use crate::types::{RejectReason, Rejection};

/// A model that passed every hard constraint, with the numbers the policy ranks by.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Its index in the catalog.
    pub model: ModelIndex,
    /// `Σ wᵢ·sᵢ(m)`, the classifiers' weighted evidence.
    pub logit: f64,
    /// `σ(logit)`: the predicted probability of an acceptable answer.
    pub p: f64,
    /// The expected cost.
    pub cost: CostEstimate,
    /// The expected latency in seconds (time to first token plus decoding).
    pub latency_secs: f64,
    /// The measured share of calls that succeed (1 until the model has enough samples); `p` includes
    /// it.
    pub success_rate: f64,
    /// Whether `latency_secs` and `success_rate` come from live measurements rather than the catalog.
    pub live: bool,
}

impl Candidate {
    /// A candidate; `p` is derived from `logit`.
    pub fn new(model: ModelIndex, logit: f64, cost: CostEstimate, latency_secs: f64) -> Self {
        Self { model, logit, p: sigmoid(logit), cost, latency_secs, success_rate: 1.0, live: false }
    }

    /// Replaces the static latency and reliability with measured ones: `p` becomes `σ(logit)` times the
    /// success rate (an answer needs the call to succeed first).
    pub(crate) fn with_live(mut self, latency_secs: f64, success_rate: f64) -> Self {
        let rate = if success_rate.is_finite() { success_rate.clamp(0.0, 1.0) } else { 1.0 };
        if latency_secs.is_finite() && latency_secs >= 0.0 {
            self.latency_secs = latency_secs;
        }
        self.success_rate = rate;
        self.p = sigmoid(self.logit) * rate;
        self.live = true;
        self
    }
}

/// A routing decision: the chosen model, its fallbacks, every candidate's numbers, the models that were
/// filtered out and why, and what the classifiers found.
///
/// Cheap to clone (one reference count plus three small vectors). `PartialEq` compares everything but
/// the id and the catalog handle's identity.
#[non_exhaustive]
#[derive(Clone)]
pub struct Decision {
    pub(crate) id: DecisionId,
    pub(crate) recovery: bool,
    pub(crate) catalog: Catalog,
    pub(crate) ranking: SmallVec<[Scored; 16]>,
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) rejections: Vec<Rejection>,
    pub(crate) policy: Arc<str>,
    pub(crate) note: Option<Cow<'static, str>>,
    pub(crate) arm: Option<ArmTag>,
    pub(crate) intent: Option<IntentScore>,
    pub(crate) difficulty: Option<f64>,
    pub(crate) learned: Option<LearnedRead>,
    pub(crate) input_tokens: Option<TokenEstimate>,
    pub(crate) confidence_floor: f64,
    pub(crate) pinned: Option<Resolved>,
}

/// What the router does when a decision's chosen model is predicted to answer acceptably with a
/// probability `p` below its confidence floor
/// ([`RouterBuilder::confidence_floor`](crate::RouterBuilder::confidence_floor)).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLowConfidence {
    /// Route as usual and say so: [`Decision::is_low_confidence`] is true, [`Decision::explain`]
    /// names the floor, and the router logs a warning (target `switchyard`) when it executes the
    /// decision.
    #[default]
    Flag,
    /// Refuse the request with [`ErrorKind::LowConfidence`](crate::ErrorKind::LowConfidence)
    /// instead of sending it to a model that is more likely to fail than the floor allows.
    Refuse,
}

impl Decision {
    /// The decision's id, for [`Router::feedback`](crate::Router::feedback).
    pub fn id(&self) -> DecisionId {
        self.id
    }

    /// Whether every capable model's circuit was open, so the router picked the one closest to
    /// recovery instead of failing.
    pub fn is_recovery(&self) -> bool {
        self.recovery
    }

    /// The chosen model's id.
    pub fn model(&self) -> &ModelId {
        &self.profile().id
    }

    /// The chosen model's profile.
    pub fn profile(&self) -> &ModelProfile {
        self.catalog.model(self.ranking[0].model)
    }

    /// The chosen model's catalog index.
    pub fn model_index(&self) -> ModelIndex {
        self.ranking[0].model
    }

    /// The fallbacks, in order.
    pub fn fallbacks(&self) -> impl Iterator<Item = &ModelId> + '_ {
        self.ranking[1..].iter().map(|s| &self.catalog.model(s.model).id)
    }

    /// The whole ranking (chosen model first) with the policy's scores.
    pub fn ranking(&self) -> &[Scored] {
        &self.ranking
    }

    /// Every candidate that passed the hard constraints, in catalog order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The candidate numbers of `model`, if it was a candidate.
    pub fn candidate(&self, model: &str) -> Option<&Candidate> {
        let idx = self.catalog.index_of(model)?;
        self.candidates.iter().find(|c| c.model == idx)
    }

    /// The chosen model's candidate numbers.
    pub fn chosen(&self) -> &Candidate {
        let idx = self.ranking[0].model;
        // The router only builds decisions whose ranking names candidates.
        self.candidates.iter().find(|c| c.model == idx).unwrap_or(&self.candidates[0])
    }

    /// The chosen model's expected cost in USD.
    pub fn estimated_cost(&self) -> f64 {
        self.chosen().cost.usd
    }

    /// The models hard constraints removed, and why.
    pub fn rejections(&self) -> &[Rejection] {
        &self.rejections
    }

    /// What the request pinned ([`Request::with_model`](crate::Request::with_model)): the model,
    /// group or alias whose models the decision ranks. `None` when the policy routed the request.
    pub fn pinned(&self) -> Option<&Resolved> {
        self.pinned.as_ref()
    }

    /// The name of the policy that decided: `"pinned"` for a pinned request, whose ranking is the
    /// pin's balance order ([`pinned`](Self::pinned)).
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The policy's note (which rule matched, say).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The experiment arm that decided, when an [`Experiment`](crate::policy::experiment::Experiment)
    /// routed the request (the outermost one, when experiments nest).
    pub fn arm(&self) -> Option<&ArmTag> {
        self.arm.as_ref()
    }

    /// The request's intent, if an intent classifier ran.
    pub fn intent(&self) -> Option<IntentScore> {
        self.intent
    }

    /// The request's difficulty, if a difficulty classifier ran.
    pub fn difficulty(&self) -> Option<f64> {
        self.difficulty
    }

    /// What a [`LearnedClassifier`](crate::classify::LearnedClassifier) read of the request, if one
    /// ran: how far it trusted its trained model, and the prompt's need for a dearer model.
    pub fn learned(&self) -> Option<LearnedRead> {
        self.learned
    }

    /// The input token count the constraints used.
    pub fn input_tokens(&self) -> Option<TokenEstimate> {
        self.input_tokens
    }

    /// The catalog the decision was made over.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Whether the chosen model's predicted probability of an acceptable answer is below the
    /// router's confidence floor
    /// ([`RouterBuilder::confidence_floor`](crate::RouterBuilder::confidence_floor)). Such a decision is never made silently:
    /// [`explain`](Self::explain) says so, and executing it logs a warning.
    pub fn is_low_confidence(&self) -> bool {
        self.chosen().p < self.confidence_floor
    }

    /// A one-paragraph explanation: the choice and its numbers, the runner-up, the request's signals
    /// and the filtered models. Contains no prompt text.
    pub fn explain(&self) -> String {
        let mut s = String::with_capacity(256);
        let c = self.chosen();
        let _ = write!(
            s,
            "{} chose `{}` (score {:.3}, p {:.2}, cost ${:.6}, latency {:.2}s)",
            self.policy,
            self.model(),
            self.ranking[0].score,
            c.p,
            c.cost.usd,
            c.latency_secs
        );
        if let Some(note) = &self.note {
            let _ = write!(s, " because {note}");
        }
        if let Some(arm) = &self.arm {
            let _ = write!(s, " [{arm}]");
        }
        if c.live {
            let _ = write!(s, " [live: {:.0}% success]", c.success_rate * 100.0);
        }
        if self.recovery {
            s.push_str(" (every capable model's circuit is open; trying the one closest to recovery)");
        }
        if self.profile().ability.is_unset() {
            let _ = write!(s, " [`{}` has no ability set: counted as θ = 0]", self.model());
        } else if let Some(known) = self.profile().ability.known_as() {
            let _ = write!(
                s,
                " [ability of `{known}` from the known-models table, checked {}]",
                crate::catalog::KNOWN_CHECKED
            );
        }
        if self.is_low_confidence() {
            let _ = write!(s, " [low confidence: p {:.2} is below the floor {:.2}]", c.p, self.confidence_floor);
        }
        if let Some(next) = self.ranking.get(1) {
            let nc = self.candidates.iter().find(|x| x.model == next.model);
            let _ = write!(s, "; next `{}` (score {:.3}", self.catalog.model(next.model).id, next.score);
            if let Some(nc) = nc {
                let _ = write!(s, ", p {:.2}, cost ${:.6}", nc.p, nc.cost.usd);
            }
            s.push(')');
        }
        s.push_str("; request:");
        if let Some(i) = self.intent {
            let _ = write!(s, " intent {} ({:.0}%)", i.intent, i.confidence * 100.0);
        }
        if let Some(d) = self.difficulty {
            let _ = write!(s, " difficulty {d:.2}");
        }
        if let Some(l) = self.learned {
            let _ = write!(s, " learned trust {:.2}", l.trust);
            if let Some(z) = l.need {
                let _ = write!(s, " (need {z:+.2} sd)");
            }
            if l.trust < 1.0 {
                let _ = write!(s, " [partly on the fallback rates]");
            }
        }
        if let Some(t) = self.input_tokens {
            let _ = write!(s, " {} input tokens ({})", t.tokens, if t.exact { "exact" } else { "estimated" });
        }
        if !self.rejections.is_empty() {
            let _ = write!(s, "; filtered {}:", self.rejections.len());
            for (i, r) in self.rejections.iter().enumerate() {
                let _ = write!(s, "{}{r}", if i == 0 { " " } else { ", " });
            }
        }
        s
    }
}

/// A decision in serialized form is a summary for logs, dashboards and HTTP responses: the chosen
/// model, its fallbacks, each ranked candidate's numbers, the filtered models with their reasons, the
/// request's signals and [`explain`](Decision::explain)'s paragraph. It holds no prompt text and does
/// not deserialize (a decision refers to its catalog).
///
/// ```json
/// {"id": 7, "model": "mini", "fallbacks": ["large"], "policy": "utility", "pinned": null, "note": null, "arm": null,
///  "low_confidence": false, "recovery": false,
///  "ranking": [{"model": "mini", "score": 0.0091, "p": 0.93, "cost_usd": 0.00004,
///               "latency_secs": 0.8, "success_rate": 1.0, "live": false}, ...],
///  "rejections": [{"model": "vision-only", "reason": "lacks capability tools"}],
///  "intent": {"intent": "chat", "confidence": 0.71}, "difficulty": 0.12,
///  "learned": {"trust": 0.4, "need": 1.3} (only with a learned classifier),
///  "input_tokens": {"tokens": 14, "exact": false}, "explanation": "utility chose `mini` ..."}
/// ```
impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Ranked<'a> {
            model: &'a ModelId,
            score: f64,
            p: Option<f64>,
            cost_usd: Option<f64>,
            latency_secs: Option<f64>,
            success_rate: Option<f64>,
            live: bool,
        }
        #[derive(serde::Serialize)]
        struct Filtered<'a> {
            model: &'a ModelId,
            reason: String,
        }
        #[derive(serde::Serialize)]
        struct Summary<'a> {
            id: crate::types::DecisionId,
            model: &'a ModelId,
            fallbacks: Vec<&'a ModelId>,
            policy: &'a str,
            pinned: Option<&'a Resolved>,
            note: Option<&'a str>,
            arm: Option<String>,
            low_confidence: bool,
            recovery: bool,
            ranking: Vec<Ranked<'a>>,
            rejections: Vec<Filtered<'a>>,
            intent: Option<IntentScore>,
            difficulty: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            learned: Option<LearnedRead>,
            input_tokens: Option<TokenEstimate>,
            explanation: String,
        }
        let ranking = self
            .ranking
            .iter()
            .map(|s| {
                let c = self.candidates.iter().find(|c| c.model == s.model);
                Ranked {
                    model: &self.catalog.model(s.model).id,
                    score: s.score,
                    p: c.map(|c| c.p),
                    cost_usd: c.map(|c| c.cost.usd),
                    latency_secs: c.map(|c| c.latency_secs),
                    success_rate: c.map(|c| c.success_rate),
                    live: c.is_some_and(|c| c.live),
                }
            })
            .collect();
        Summary {
            id: self.id,
            model: self.model(),
            fallbacks: self.fallbacks().collect(),
            policy: &self.policy,
            pinned: self.pinned.as_ref(),
            note: self.note.as_deref(),
            arm: self.arm.as_ref().map(ToString::to_string),
            low_confidence: self.is_low_confidence(),
            recovery: self.recovery,
            ranking,
            rejections: self
                .rejections
                .iter()
                .map(|r| Filtered { model: r.model(), reason: r.reason().to_string() })
                .collect(),
            intent: self.intent,
            difficulty: self.difficulty,
            learned: self.learned,
            input_tokens: self.input_tokens,
            explanation: self.explain(),
        }
        .serialize(serializer)
    }
}

/// What a [`LearnedClassifier`](crate::classify::LearnedClassifier) read of a request
/// ([`Decision::learned`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LearnedRead {
    /// How far the prediction trusted the trained model, in `[0, 1]`
    /// ([`Prediction::trust`](crate::classify::learned::Prediction::trust)); the rest went to the
    /// fallback rates.
    pub trust: f64,
    /// The prompt's need for a dearer model, in standard deviations from the training rows' mean
    /// ([`LearnedModel::standardised_need`](crate::classify::learned::LearnedModel::standardised_need));
    /// `None` when the model has no such statistics.
    pub need: Option<f64>,
}

impl PartialEq for Decision {
    fn eq(&self, other: &Self) -> bool {
        self.catalog == other.catalog
            && self.ranking == other.ranking
            && self.candidates == other.candidates
            && self.rejections == other.rejections
            && self.policy == other.policy
            && self.note == other.note
            && self.arm == other.arm
            && self.intent == other.intent
            && self.difficulty == other.difficulty
            && self.learned == other.learned
            && self.input_tokens == other.input_tokens
            && self.confidence_floor == other.confidence_floor
            && self.recovery == other.recovery
            && self.pinned == other.pinned
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("id", &self.id)
            .field("model", self.model())
            .field("fallbacks", &self.fallbacks().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .field("pinned", &self.pinned.as_ref().map(Resolved::name))
            .field("note", &self.note)
            .field("arm", &self.arm)
            .field("candidates", &self.candidates)
            .field("rejections", &self.rejections)
            .field("intent", &self.intent)
            .field("difficulty", &self.difficulty)
            .field("learned", &self.learned)
            .field("input_tokens", &self.input_tokens)
            .finish()
    }
}
