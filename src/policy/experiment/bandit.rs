//! [`Bandit`]: Thompson sampling over the candidates, per context bucket, learning from feedback.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ModelId};
use crate::classify::Intent;
use crate::classify::Signals;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::Rng;
use crate::hash::{fnv1a, mix64};
use crate::policy::experiment::controller::Knob;
use crate::policy::experiment::shared::Learning;
use crate::policy::{Memo, Outcome, Policy, PolicyInput, Ranking, check_unit, check_weight};
use crate::state::Counter;
use crate::state::{Slot, Window};

/// Learns which model serves each kind of request best, from the outcomes the service reports.
///
/// # How it ranks
/// 1. The request falls in a context bucket: its intent (or none) × its difficulty band (edges set
///    by [`difficulty_bands`](Self::difficulty_bands); unknown difficulty has a band of its own).
/// 2. For every candidate `m`, the quality of its answer has a Beta posterior. Before any outcome
///    it is the prior `Beta(n₀·p(m), n₀·(1 − p(m)))`: the classifiers' and catalog's prediction for
///    this request (the candidate's `p`) worth `n₀` outcomes. Each outcome of quality `q` (a
///    failure is `q = 0`) adds `q` to the cell's `S`, `1 − q` to its `F` and the prediction made at
///    decision time to its `P`. The posterior then corrects this request's prediction by what the
///    bucket's outcomes say about the catalog there, in logit space, so that requests of different
///    difficulty in one bucket keep their order: with `N = S + F`,
///    `δ = logit((S + n₀·P/N)/(N + n₀)) − logit(P/N)`, mean `μ = σ(logit p(m) + δ)` and posterior
///    `Beta(μ·(n₀ + N), (1 − μ)·(n₀ + N))`.
/// 3. Thompson sampling: draw `θ̃(m)` from each posterior and score `V·θ̃(m) − c(m)`, the
///    reward of [`Utility`](crate::Utility) in USD with `V` the value of an acceptable answer
///    ([`answer_value`](Self::answer_value)). The cost is the cost model's estimate for this
///    request, known before the call; only quality is uncertain and learned. Best score first.
/// 4. Exploration floor: with probability `ε` ([`exploration`](Self::exploration)) a candidate
///    drawn uniformly goes first instead, so no model starves however bad its start.
///
/// Each candidate's draw comes from a generator of its own, seeded by the decision and the model's
/// id, and the explored candidate is the one with the lowest hashed key: so, as with `Utility`, the
/// choice between two models never depends on a third one that is not chosen.
///
/// It ranks only `input.candidates`, which the router has already filtered by every hard
/// constraint (context, capabilities, budget caps, open circuits), so exploration never breaks one.
///
/// # Determinism and concurrency
/// Each decision draws from its own generator, seeded from the router's
/// [`uniform`](PolicyInput::uniform), the bandit's seed and a decision counter: given the same
/// inputs and the same state, the same ranking. `rank` takes no lock: it reads the posteriors from
/// atomics. [`observe`](Policy::observe) updates one bucket under that bucket's short mutex (the
/// reads never wait on it), and when a posterior holds more than
/// [`max_evidence`](Self::max_evidence) outcomes its sums (`S`, `F`, `P`) are scaled down to it, so
/// old outcomes fade and the bandit follows drifting traffic. Memory is fixed: buckets × models
/// cells. A reader may see one sum of an update before the other (they are separate atomics); a
/// posterior off by one outcome for one decision is harmless, and the next read is whole.
///
/// Clones share the learned state. Use one bandit per catalog: it binds to the first catalog it
/// sees and fails routing with [`ErrorKind::Routing`] on another.
#[derive(Clone)]
pub struct Bandit {
    inner: Arc<Inner>,
}

struct Inner {
    value: Knob,
    exploration: f64,
    prior_strength: f64,
    bands: Vec<f64>,
    max_evidence: f64,
    seed: u64,
    /// The name its evidence is shared under (`LimitsConfig::share_learning`).
    name: Arc<str>,
    /// Shared evidence counts the outcomes of this sliding window.
    shared_window: Duration,
    draws: AtomicU64,
    state: OnceLock<State>,
}

struct Cell {
    /// Quality summed over the evidence kept (`S`).
    alpha: AtomicU64,
    /// One minus the quality, summed (`F`); `S + F` is the evidence kept.
    beta: AtomicU64,
    /// The predicted `p` at decision time, summed over the same evidence (`P`).
    predicted: AtomicU64,
    /// Outcomes received.
    n: AtomicU64,
}

impl Cell {
    /// Sets the sums, scaled down together so that `S + F` is at most `cap` (old evidence fades).
    fn set(&self, mut a: f64, mut b: f64, mut pred: f64, cap: f64) {
        if a + b > cap {
            let scale = cap / (a + b);
            a *= scale;
            b *= scale;
            pred *= scale;
        }
        self.alpha.store(a.to_bits(), Ordering::Relaxed);
        self.beta.store(b.to_bits(), Ordering::Relaxed);
        self.predicted.store(pred.to_bits(), Ordering::Relaxed);
    }
}

struct State {
    catalog: Catalog,
    models: usize,
    /// Per model, a hash of its id that seeds its draws.
    keys: Box<[u64]>,
    cells: Box<[Cell]>,
    locks: Box<[Mutex<()>]>,
    /// Per cell, `S`, `F`, `P` and the outcome count observed here since the last sync with the
    /// other replicas (unscaled).
    pending: Mutex<Vec<f64>>,
}

impl State {
    fn cell(&self, bucket: usize, model: usize) -> Option<&Cell> {
        if model >= self.models {
            return None;
        }
        self.cells.get(bucket * self.models + model)
    }
}

fn load(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

impl Default for Bandit {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Bandit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Bandit")
            .field("answer_value", &i.value)
            .field("exploration", &i.exploration)
            .field("prior_strength", &i.prior_strength)
            .field("bands", &i.bands)
            .field("max_evidence", &i.max_evidence)
            .finish_non_exhaustive()
    }
}

impl Bandit {
    /// `V` = [`DEFAULT_ANSWER_VALUE_USD`](crate::policy::DEFAULT_ANSWER_VALUE_USD), exploration 0.01,
    /// prior strength 2, difficulty bands at 0.5, 1.5 and 2.5, at most 1,000 outcomes of evidence per
    /// posterior, seed 0.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                value: Knob::new(crate::policy::DEFAULT_ANSWER_VALUE_USD),
                exploration: 0.01,
                prior_strength: 2.0,
                bands: vec![0.5, 1.5, 2.5],
                max_evidence: 1000.0,
                seed: 0,
                name: Arc::from("bandit"),
                shared_window: Duration::from_secs(86_400),
                draws: AtomicU64::new(0),
                state: OnceLock::new(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        // Setters run before the bandit is shared; after that a setter leaves the original alone and
        // configures a fresh bandit with no learned state.
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => {
                let i = &*self.inner;
                let mut fresh = Inner {
                    value: i.value.clone(),
                    exploration: i.exploration,
                    prior_strength: i.prior_strength,
                    bands: i.bands.clone(),
                    max_evidence: i.max_evidence,
                    seed: i.seed,
                    name: i.name.clone(),
                    shared_window: i.shared_window,
                    draws: AtomicU64::new(0),
                    state: OnceLock::new(),
                };
                f(&mut fresh);
                self.inner = Arc::new(fresh);
            }
        }
        self
    }

    /// Sets `V`, the value of an acceptable answer in USD (finite, ≥ 0; checked when the router is
    /// built).
    pub fn answer_value(self, usd: f64) -> Self {
        self.with(|i| i.value = Knob::new(usd))
    }

    /// Reads `V` from a shared knob on every decision, so that a
    /// [`SpendController`](crate::policy::experiment::SpendController) can turn it.
    pub fn answer_value_knob(self, knob: Knob) -> Self {
        self.with(|i| i.value = knob)
    }

    /// Sets the exploration floor `ε` in `[0, 1]`: the chance that a uniformly drawn candidate goes
    /// first.
    pub fn exploration(self, epsilon: f64) -> Self {
        self.with(|i| i.exploration = epsilon)
    }

    /// Sets the prior strength `n₀` (> 0): how many outcomes the classifiers' `p(m)` is worth.
    pub fn prior_strength(self, n0: f64) -> Self {
        self.with(|i| i.prior_strength = n0)
    }

    /// Sets the difficulty band edges (finite, strictly increasing, at most 62): a request with
    /// difficulty `d` is in band `k` when `k` edges are `≤ d`.
    pub fn difficulty_bands(self, edges: impl Into<Vec<f64>>) -> Self {
        let edges = edges.into();
        self.with(|i| i.bands = edges)
    }

    /// Caps the evidence of each posterior at this many outcomes (≥ 1): beyond it, old outcomes
    /// fade geometrically.
    pub fn max_evidence(self, outcomes: f64) -> Self {
        self.with(|i| i.max_evidence = outcomes)
    }

    /// Seeds the sampling (default 0). Bandits with different seeds explore differently.
    pub fn seed(self, seed: u64) -> Self {
        self.with(|i| i.seed = seed)
    }

    /// Names the bandit (default `bandit`): replicas that share learned state
    /// ([`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning)) add up the
    /// evidence of bandits of the same name. Bandits of one router need different names.
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.with(|i| i.name = name)
    }

    /// Sets how far back shared evidence reaches (default one day; at least one second): with
    /// [`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning), the posteriors
    /// count the fleet's outcomes of this sliding window (then capped at
    /// [`max_evidence`](Self::max_evidence)), so old outcomes fade across replicas too.
    pub fn shared_window(self, window: Duration) -> Self {
        self.with(|i| i.shared_window = window)
    }

    /// The bandit's name.
    pub(crate) fn label(&self) -> &str {
        &self.inner.name
    }

    fn buckets(&self) -> usize {
        (Intent::ALL.len() + 1) * (self.inner.bands.len() + 2)
    }

    /// The context bucket of a request's signals.
    fn bucket(&self, signals: &Signals) -> usize {
        let bands = self.inner.bands.len() + 2;
        let intent = signals.intent().and_then(|s| Intent::ALL.iter().position(|i| *i == s.intent));
        let intent = intent.unwrap_or(Intent::ALL.len());
        let band = match signals.difficulty() {
            Some(d) if d.is_finite() => self.inner.bands.iter().filter(|&&e| e <= d).count(),
            _ => bands - 1,
        };
        intent * bands + band
    }

    fn state(&self, catalog: &Catalog) -> Result<&State> {
        let state = self.inner.state.get_or_init(|| {
            let models = catalog.len();
            let cells = self.buckets() * models;
            State {
                catalog: catalog.clone(),
                models,
                keys: catalog.models().iter().map(|m| mix64(fnv1a(m.id.as_str().as_bytes()))).collect(),
                cells: (0..cells)
                    .map(|_| Cell {
                        alpha: AtomicU64::new(0),
                        beta: AtomicU64::new(0),
                        predicted: AtomicU64::new(0),
                        n: AtomicU64::new(0),
                    })
                    .collect(),
                locks: (0..self.buckets()).map(|_| Mutex::new(())).collect(),
                pending: Mutex::new(vec![0.0; cells * SHARED_FIELDS]),
            }
        });
        if state.catalog.ptr_eq(catalog) || state.catalog == *catalog {
            Ok(state)
        } else {
            Err(Error::new(
                ErrorKind::Routing,
                "this bandit learned on another catalog; give each router its own bandit",
            ))
        }
    }

    /// What the bandit has learned: for every bucket with outcomes, each model's evidence.
    pub fn snapshot(&self) -> BanditSnapshot {
        let Some(st) = self.inner.state.get() else { return BanditSnapshot { buckets: Vec::new() } };
        let bands = self.inner.bands.len() + 2;
        let mut buckets = Vec::new();
        for b in 0..self.buckets() {
            let models: Vec<ModelEvidence> = (0..st.models)
                .filter_map(|m| {
                    let c = st.cell(b, m)?;
                    let n = c.n.load(Ordering::Relaxed);
                    (n > 0).then(|| ModelEvidence {
                        model: st.catalog.model(m).id.clone(),
                        outcomes: n,
                        successes: load(&c.alpha),
                        failures: load(&c.beta),
                        predicted: load(&c.predicted),
                    })
                })
                .collect();
            if !models.is_empty() {
                buckets.push(BucketSnapshot {
                    intent: Intent::ALL.get(b / bands).copied(),
                    band: b % bands,
                    unknown_difficulty: b % bands == bands - 1,
                    models,
                });
            }
        }
        BanditSnapshot { buckets }
    }
}

/// What a [`Bandit`] has learned: [`Bandit::snapshot`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BanditSnapshot {
    /// Every bucket with at least one outcome.
    pub buckets: Vec<BucketSnapshot>,
}

/// One context bucket's evidence.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    /// The intent (`None`: no intent classifier ran, or it found none).
    pub intent: Option<Intent>,
    /// The difficulty band (0 is the easiest).
    pub band: usize,
    /// Whether this is the band of requests without a difficulty.
    pub unknown_difficulty: bool,
    /// Models with outcomes in this bucket.
    pub models: Vec<ModelEvidence>,
}

/// One model's evidence in one bucket.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEvidence {
    /// The model.
    pub model: ModelId,
    /// Outcomes received (all of them, including faded ones).
    pub outcomes: u64,
    /// The quality summed over the evidence kept (`α` without the prior).
    pub successes: f64,
    /// One minus the quality, summed (`β` without the prior).
    pub failures: f64,
    /// The predicted `p` at decision time, summed over the same evidence: compare with `successes`
    /// to see how far the catalog is off in this bucket.
    pub predicted: f64,
}

impl Policy for Bandit {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        let i = &*self.inner;
        let st = self.state(input.catalog)?;
        let bucket = self.bucket(input.signals);
        let draw = i.draws.fetch_add(1, Ordering::Relaxed);
        let seed = mix64(i.seed ^ input.uniform.to_bits()) ^ mix64(draw.wrapping_add(1));
        let value = i.value.get();
        let value = if value.is_finite() && value >= 0.0 { value } else { 0.0 };
        let n0 = i.prior_strength;
        // One generator per candidate, keyed by its id: a candidate's draw does not depend on which
        // others are present.
        let rng_of = |model: usize| Rng::new(seed ^ st.keys.get(model).copied().unwrap_or(0));
        let mut ranking = Ranking::by_score(input, |c| {
            let (a, b) = posterior(n0, c.p, st.cell(bucket, c.model));
            value * rng_of(c.model).beta(a, b) - c.cost.usd
        });
        if input.candidates.len() > 1 && Rng::new(seed).unit() < i.exploration {
            // The candidate with the lowest key explores: adding a model changes the pick only when
            // the added model is the pick.
            let explore_key = |model: usize| rng_of(model).next_u64();
            let pick = input.candidates.iter().map(|c| c.model).min_by_key(|&m| (explore_key(m), m)).unwrap_or(0);
            let score = ranking.order().iter().find(|s| s.model == pick).map_or(0.0, |s| s.score);
            ranking.promote(pick, score);
            ranking = ranking.with_note("the bandit explored");
        }
        let first = ranking.order().first().map_or(0, |s| s.model);
        let p = input.candidates.iter().find(|c| c.model == first).map_or(0.5, |c| c.p);
        Ok(ranking.with_memo(encode(bucket, first, p)))
    }

    fn name(&self) -> &str {
        "bandit"
    }

    fn validate(&self, catalog: &Catalog) -> Result<()> {
        let i = &*self.inner;
        check_weight("bandit `answer_value_usd`", i.value.get())?;
        check_unit("bandit `exploration`", i.exploration)?;
        if !(i.prior_strength.is_finite() && i.prior_strength > 0.0) {
            return Err(Error::config(format!(
                "bandit `prior_strength` must be finite and > 0, got {}",
                i.prior_strength
            )));
        }
        if !(i.max_evidence.is_finite() && i.max_evidence >= 1.0) {
            return Err(Error::config(format!(
                "bandit `max_evidence` must be finite and >= 1, got {}",
                i.max_evidence
            )));
        }
        if i.bands.len() > 62 || i.bands.iter().any(|e| !e.is_finite()) || i.bands.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::config(format!(
                "bandit `difficulty_bands` must be at most 62 finite, strictly increasing edges, got {:?}",
                i.bands
            )));
        }
        self.state(catalog).map(|_| ()).map_err(|e| Error::config(e.to_string()))
    }

    fn observe(&self, outcome: &Outcome<'_>) {
        let Some((bucket, model_bits, p)) = decode(outcome.memo) else { return };
        let Some(st) = self.inner.state.get() else { return };
        if !st.catalog.ptr_eq(outcome.catalog) && st.catalog != *outcome.catalog {
            return;
        }
        let (Some(cell), Some(lock)) = (st.cell(bucket, outcome.model), st.locks.get(bucket)) else { return };
        let q = outcome.quality().clamp(0.0, 1.0);
        let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (a, b, pred) = (load(&cell.alpha), load(&cell.beta), load(&cell.predicted));
        // The prediction made for the model that answered; a fallback's is not in the memo, so it
        // counts with the cell's mean prediction so far.
        let p = if outcome.model & MODEL_MASK == model_bits {
            p
        } else if a + b > 0.0 {
            pred / (a + b)
        } else {
            0.5
        };
        cell.set(a + q, b + (1.0 - q), pred + p, self.inner.max_evidence);
        cell.n.fetch_add(1, Ordering::Relaxed);
        let at = (bucket * st.models + outcome.model) * SHARED_FIELDS;
        let mut pending = st.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sums) = pending.get_mut(at..at + SHARED_FIELDS) {
            for (x, d) in sums.iter_mut().zip([q, 1.0 - q, p, 1.0]) {
                *x += d;
            }
        }
    }

    fn learning(&self, out: &mut Vec<Learning>) {
        out.push(Learning::bandit(self.clone()));
    }
}

/// Per cell, the sums shared with other replicas: `S`, `F`, `P` and the outcome count.
const SHARED_FIELDS: usize = 4;
const SHARED_NAMES: [&str; SHARED_FIELDS] = ["s", "f", "p", "n"];

/// Sharing a bandit's evidence through a state store: see [`Learning`].
impl Bandit {
    /// The sums observed here since the last sync, reset (empty before the first decision).
    pub(crate) fn take_pending(&self) -> Vec<f64> {
        let Some(st) = self.inner.state.get() else { return Vec::new() };
        let mut pending = st.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let zero = vec![0.0; pending.len()];
        std::mem::replace(&mut *pending, zero)
    }

    /// Gives back sums that [`take_pending`](Self::take_pending) took (the store did not answer).
    pub(crate) fn restore_pending(&self, taken: &[f64]) {
        let Some(st) = self.inner.state.get() else { return };
        let mut pending = st.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (x, t) in pending.iter_mut().zip(taken) {
            *x += t;
        }
    }

    /// The counter of `field` of cell (`bucket`, `model`): `S`, `F` and `P` per window bucket
    /// `slot`, the count until no sync has listed it for [`KEPT_UNUSED`](super::shared::KEPT_UNUSED).
    fn counter(&self, st: &State, cell: usize, field: usize, slot: Option<&Slot>) -> Counter {
        let (bucket, model) = (cell / st.models, cell % st.models);
        let id = &st.catalog.model(model).id;
        let name = &self.inner.name;
        match slot {
            Some(slot) => {
                Counter::new(format!("bandit:{name}:{}:{bucket}:{id}:{}", slot.bucket, SHARED_NAMES[field]), slot.ttl)
            }
            None => Counter::idle(format!("bandit:{name}:n:{bucket}:{id}"), super::shared::KEPT_UNUSED),
        }
    }

    fn window(&self) -> Window {
        Window::Sliding(self.inner.shared_window.max(Duration::from_secs(1)))
    }

    /// What `taken` adds to the shared counters at `now_ms`.
    pub(crate) fn charges(&self, taken: &[f64], now_ms: u64, out: &mut Vec<(Counter, f64)>) {
        let Some(st) = self.inner.state.get() else { return };
        let slot = self.window().slot(now_ms);
        for (cell, sums) in taken.chunks_exact(SHARED_FIELDS).enumerate() {
            for (field, &x) in sums.iter().enumerate().filter(|(_, x)| **x != 0.0) {
                let windowed = field + 1 < SHARED_FIELDS;
                out.push((self.counter(st, cell, field, windowed.then_some(&slot)), x));
            }
        }
    }

    /// The counters to read at `now_ms`: per cell, `S`, `F` and `P` of the current and the previous
    /// window bucket, then the count.
    pub(crate) fn counters(&self, now_ms: u64, out: &mut Vec<Counter>) {
        let Some(st) = self.inner.state.get() else { return };
        let slot = self.window().slot(now_ms);
        let previous = Slot { bucket: slot.bucket - 1, ..slot };
        for cell in 0..st.cells.len() {
            for field in 0..SHARED_FIELDS - 1 {
                out.push(self.counter(st, cell, field, Some(&slot)));
                out.push(self.counter(st, cell, field, Some(&previous)));
            }
            out.push(self.counter(st, cell, SHARED_FIELDS - 1, None));
        }
    }

    /// Replaces each posterior's evidence with the fleet's, read as [`counters`](Self::counters)
    /// lists them at `now_ms`, plus what was observed here since, capped at `max_evidence`.
    pub(crate) fn install(&self, values: &[f64], now_ms: u64) {
        let Some(st) = self.inner.state.get() else { return };
        let weight = self.window().slot(now_ms).previous.unwrap_or(0.0);
        let per_cell = 2 * (SHARED_FIELDS - 1) + 1;
        if values.len() != st.cells.len() * per_cell {
            return;
        }
        let cap = self.inner.max_evidence;
        for (bucket, lock) in st.locks.iter().enumerate() {
            let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = st.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for model in 0..st.models {
                let i = bucket * st.models + model;
                let (Some(cell), Some(v)) = (st.cells.get(i), values.get(i * per_cell..(i + 1) * per_cell)) else {
                    continue;
                };
                let local = &pending[i * SHARED_FIELDS..(i + 1) * SHARED_FIELDS];
                let fleet = |f: usize| (v[2 * f] + weight * v[2 * f + 1]).max(0.0) + local[f];
                cell.set(fleet(0), fleet(1), fleet(2), cap);
                let n = v[per_cell - 1].max(0.0) + local[SHARED_FIELDS - 1];
                cell.n.store(n.round() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Bits of the bandit's memo: a marker bit, the bucket (9 bits), the first-ranked model's index
/// modulo 2^11 and its predicted `p` in 11 bits: 32 bits, which leaves room for two composite frames
/// (rules, experiments) around it.
const BUCKET_BITS: u32 = 9;
const MODEL_BITS: u32 = 11;
const P_BITS: u32 = 11;
const MODEL_MASK: usize = (1 << MODEL_BITS) - 1;
const P_SCALE: f64 = ((1u64 << P_BITS) - 1) as f64;

fn encode(bucket: usize, model: usize, p: f64) -> Memo {
    let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.5 };
    let bits = 1
        | ((bucket as u64 & ((1 << BUCKET_BITS) - 1)) << 1)
        | (((model & MODEL_MASK) as u64) << (1 + BUCKET_BITS))
        | (((p * P_SCALE).round() as u64) << (1 + BUCKET_BITS + MODEL_BITS));
    Memo::new(bits)
}

fn decode(memo: Memo) -> Option<(usize, usize, f64)> {
    let bits = memo.get();
    if bits & 1 == 0 || bits >> (1 + BUCKET_BITS + MODEL_BITS + P_BITS) != 0 {
        return None;
    }
    let bucket = ((bits >> 1) & ((1 << BUCKET_BITS) - 1)) as usize;
    let model = ((bits >> (1 + BUCKET_BITS)) as usize) & MODEL_MASK;
    let p = (bits >> (1 + BUCKET_BITS + MODEL_BITS)) as f64 / P_SCALE;
    Some((bucket, model, p))
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// The Beta posterior of a candidate's quality in a bucket: the catalog's prediction `p`, corrected
/// in logit space by what the bucket's outcomes say about the catalog's predictions there, with the
/// strength of the prior plus the evidence.
///
/// With `S` the quality summed over the evidence `N = S + F` and `P` the predictions summed over it,
/// the correction is `δ = logit((S + n₀·P/N) / (N + n₀)) − logit(P/N)` (shrunk towards 0 while `N`
/// is small), the mean `μ = σ(logit p + δ)` and the posterior `Beta(μ·(n₀ + N), (1 − μ)·(n₀ + N))`.
/// Without evidence it is the prior `Beta(n₀·p, n₀·(1 − p))`.
fn posterior(n0: f64, p: f64, cell: Option<&Cell>) -> (f64, f64) {
    let p = if p.is_finite() { p.clamp(0.01, 0.99) } else { 0.5 };
    let (s, f, pred) = cell.map_or((0.0, 0.0, 0.0), |c| (load(&c.alpha), load(&c.beta), load(&c.predicted)));
    let n = s + f;
    if !(n > 0.0 && n.is_finite()) {
        return (n0 * p, n0 * (1.0 - p));
    }
    let mean_pred = (pred / n).clamp(0.01, 0.99);
    let observed = ((s + n0 * mean_pred) / (n + n0)).clamp(0.001, 0.999);
    let delta = logit(observed) - logit(mean_pred);
    let mu = crate::classify::sigmoid(logit(p) + delta).clamp(0.001, 0.999);
    let k = n0 + n;
    (mu * k, (1.0 - mu) * k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memos_round_trip() {
        for (bucket, model, p) in [(0, 0, 0.0), (511, 2047, 1.0), (37, 5, 0.731), (300, 4096 + 7, 0.5)] {
            let (b, m, q) = decode(encode(bucket, model, p)).unwrap();
            assert_eq!((b, m), (bucket, model & MODEL_MASK));
            assert!((q - p).abs() <= 0.5 / P_SCALE, "{q} vs {p}");
            assert!(encode(bucket, model, p).get() < 1 << 32);
        }
        assert_eq!(decode(Memo::NONE), None);
        assert_eq!(decode(Memo::new(u64::MAX)), None);
    }

    #[test]
    fn the_posterior_corrects_the_catalog_where_outcomes_disagree() {
        let cell = |s: f64, f: f64, pred: f64| Cell {
            alpha: AtomicU64::new(s.to_bits()),
            beta: AtomicU64::new(f.to_bits()),
            predicted: AtomicU64::new(pred.to_bits()),
            n: AtomicU64::new(0),
        };
        // No evidence: the prior.
        assert_eq!(posterior(2.0, 0.7, None), (2.0 * 0.7, 2.0 * (1.0 - 0.7)));
        // The catalog predicted 0.8 on 100 outcomes that succeeded half the time: a request it rates
        // 0.8 is now about 0.5, a harder one it rates 0.6 lower still, with 102 outcomes of strength.
        let c = cell(50.0, 50.0, 80.0);
        let (a, b) = posterior(2.0, 0.8, Some(&c));
        assert!((a + b - 102.0).abs() < 1e-9);
        assert!((a / (a + b) - 0.5).abs() < 0.02, "{}", a / (a + b));
        let (a2, b2) = posterior(2.0, 0.6, Some(&c));
        assert!(a2 / (a2 + b2) < a / (a + b));
        // Outcomes that agree with the catalog leave its predictions alone.
        let agree = cell(70.0, 30.0, 70.0);
        let (a, b) = posterior(2.0, 0.9, Some(&agree));
        assert!((a / (a + b) - 0.9).abs() < 1e-9);
    }
}
