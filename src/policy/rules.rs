//! [`Rules`]: the first matching rule pins a model or a sub-portfolio.

use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::catalog::{Catalog, ModelId};
use crate::classify::Intent;
use crate::error::{Error, Result};
use crate::policy::experiment::{ExperimentHandle, Learning};
use crate::policy::{Candidate, Outcome, Policy, PolicyInput, Ranking, Utility};

/// When a rule applies. Every condition that is set must hold; an empty condition always holds.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Condition {
    /// The request's intent is one of these.
    pub intents: Vec<Intent>,
    /// At least this many input tokens.
    pub min_input_tokens: Option<u32>,
    /// At most this many input tokens.
    pub max_input_tokens: Option<u32>,
    /// Difficulty at least this.
    pub min_difficulty: Option<f64>,
    /// The request carries this tag.
    pub tag: Option<String>,
    /// The request is billed to this tenant.
    pub tenant: Option<String>,
}

impl Condition {
    /// A condition that always holds.
    pub fn always() -> Self {
        Self::default()
    }

    /// Requires one of these intents.
    pub fn intent(mut self, intent: Intent) -> Self {
        self.intents.push(intent);
        self
    }

    /// Requires an input token count in `[min, max]`.
    pub fn input_tokens(mut self, min: Option<u32>, max: Option<u32>) -> Self {
        self.min_input_tokens = min;
        self.max_input_tokens = max;
        self
    }

    /// Requires a difficulty of at least `d`.
    pub fn min_difficulty(mut self, d: f64) -> Self {
        self.min_difficulty = Some(d);
        self
    }

    /// Requires a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Requires a tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    fn matches(&self, input: &PolicyInput<'_>) -> bool {
        let s = input.signals;
        let hints = &input.request.hints;
        if !self.intents.is_empty() && !s.intent().is_some_and(|i| self.intents.contains(&i.intent)) {
            return false;
        }
        let tokens = s.input_tokens().map_or(0, |t| t.tokens);
        if self.min_input_tokens.is_some_and(|m| tokens < m) || self.max_input_tokens.is_some_and(|m| tokens > m) {
            return false;
        }
        if self.min_difficulty.is_some_and(|m| s.difficulty().is_none_or(|d| d < m)) {
            return false;
        }
        if self.tag.as_ref().is_some_and(|t| !hints.tags.iter().any(|x| x == t)) {
            return false;
        }
        if self.tenant.as_ref().is_some_and(|t| hints.tenant.as_deref() != Some(t.as_str())) {
            return false;
        }
        true
    }
}

/// What a matching rule does.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Serve with this model; the other candidates follow as fallbacks in the default policy's order.
    /// If the model was filtered out for this request, the rule is skipped.
    Pin(ModelId),
    /// Rank only these models (with the rule's policy, or the default one). If none of them is a
    /// candidate for this request, the rule is skipped.
    Portfolio(Vec<ModelId>),
    /// Rank only the models carrying this catalog tag.
    Tagged(String),
}

/// One rule: a name, a condition, an action and, for sub-portfolios, an optional policy.
#[derive(Clone)]
pub struct Rule {
    name: String,
    when: Condition,
    then: Action,
    policy: Option<Arc<dyn Policy>>,
}

impl Rule {
    /// A rule.
    pub fn new(name: impl Into<String>, when: Condition, then: Action) -> Self {
        Self { name: name.into(), when, then, policy: None }
    }

    /// Ranks this rule's sub-portfolio with `policy` instead of the default one.
    pub fn with_policy(mut self, policy: impl Policy + 'static) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("when", &self.when)
            .field("then", &self.then)
            .field("policy", &self.policy.as_ref().map(|p| p.name().to_owned()))
            .finish()
    }
}

/// The first rule whose condition holds decides; when none does, the default policy ranks everything.
///
/// 1. Rules are tried in order.
/// 2. A rule matches when its [`Condition`] holds for the request's signals and hints.
/// 3. [`Action::Pin`] puts the pinned model first and the default policy's ranking of the others after
///    it; [`Action::Portfolio`] and [`Action::Tagged`] rank only their models. A rule whose models were
///    all filtered out for this request is skipped, and the next one is tried.
/// 4. The decision's note names the rule that matched. Portfolio and tagged rankings are
///    [exclusive](Ranking::exclusive): the router's fallback model is not appended to them.
#[derive(Clone)]
pub struct Rules {
    rules: Vec<Rule>,
    default: Arc<dyn Policy>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules").field("rules", &self.rules).field("default", &self.default.name()).finish()
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::new(Utility::default())
    }
}

impl Rules {
    /// No rules yet, with `default` ranking requests no rule matches.
    pub fn new(default: impl Policy + 'static) -> Self {
        Self { rules: Vec::new(), default: Arc::new(default) }
    }

    /// Appends a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
}

impl Policy for Rules {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.when.matches(input) {
                continue;
            }
            let policy = rule.policy.as_deref().unwrap_or(&*self.default);
            // The memo's frame says which policy ranked: 0 the default, i + 1 rule i's own.
            let frame = match &rule.policy {
                Some(_) => u16::try_from(i + 1).unwrap_or(u16::MAX),
                None => 0,
            };
            match &rule.then {
                Action::Pin(id) => {
                    let Some(idx) = input.catalog.index_of(id) else { continue };
                    let Some(c) = input.candidates.iter().find(|c| c.model == idx) else { continue };
                    let mut ranking = self.default.rank(input)?;
                    ranking.promote(idx, c.p);
                    let memo = ranking.memo().nest(0);
                    return Ok(ranking.with_note(format!("rule `{}` pinned `{id}`", rule.name)).with_memo(memo));
                }
                Action::Portfolio(models) => {
                    let sub: SmallVec<[Candidate; 8]> = input
                        .candidates
                        .iter()
                        .filter(|c| models.iter().any(|m| *m == input.catalog.model(c.model).id))
                        .copied()
                        .collect();
                    if sub.is_empty() {
                        continue;
                    }
                    let ranking = policy.rank(&input.with_candidates(&sub))?;
                    let memo = ranking.memo().nest(frame);
                    return Ok(ranking
                        .with_note(format!("rule `{}` chose its portfolio", rule.name))
                        .with_memo(memo)
                        .exclusive());
                }
                Action::Tagged(tag) => {
                    let sub: SmallVec<[Candidate; 8]> = input
                        .candidates
                        .iter()
                        .filter(|c| input.catalog.model(c.model).has_tag(tag))
                        .copied()
                        .collect();
                    if sub.is_empty() {
                        continue;
                    }
                    let ranking = policy.rank(&input.with_candidates(&sub))?;
                    let memo = ranking.memo().nest(frame);
                    return Ok(ranking
                        .with_note(format!("rule `{}` chose models tagged `{tag}`", rule.name))
                        .with_memo(memo)
                        .exclusive());
                }
            }
        }
        let ranking = self.default.rank(input)?;
        let memo = ranking.memo().nest(0);
        Ok(ranking.with_memo(memo))
    }

    fn name(&self) -> &str {
        "rules"
    }

    /// Passes the outcome to the policy that ranked the decision (the default or the matching rule's
    /// own), with the memo that policy set.
    fn observe(&self, outcome: &Outcome<'_>) {
        let (frame, inner) = outcome.memo.unnest();
        let policy = match frame {
            Some(0) => Some(&self.default),
            Some(i) => self.rules.get(usize::from(i) - 1).and_then(|r| r.policy.as_ref()),
            None => None,
        };
        if let Some(p) = policy {
            p.observe(&outcome.with_memo(inner));
        }
    }

    fn experiments(&self, out: &mut Vec<ExperimentHandle>) {
        self.default.experiments(out);
        for rule in &self.rules {
            if let Some(p) = &rule.policy {
                p.experiments(out);
            }
        }
    }

    fn learning(&self, out: &mut Vec<Learning>) {
        self.default.learning(out);
        for rule in &self.rules {
            if let Some(p) = &rule.policy {
                p.learning(out);
            }
        }
    }

    fn validate(&self, catalog: &Catalog) -> Result<()> {
        self.default.validate(catalog)?;
        for rule in &self.rules {
            let what = format!("rule `{}`", rule.name);
            match &rule.then {
                Action::Pin(id) => {
                    catalog.require(id, &what)?;
                }
                Action::Portfolio(models) => {
                    if models.is_empty() {
                        return Err(Error::config(format!("{what} has an empty portfolio")));
                    }
                    for id in models {
                        catalog.require(id, &what)?;
                    }
                }
                Action::Tagged(tag) => {
                    if !catalog.models().iter().any(|m| m.has_tag(tag)) {
                        return Err(Error::config(format!("{what} selects tag `{tag}`, which no model carries")));
                    }
                }
            }
            if let Some(d) = rule.when.min_difficulty
                && !d.is_finite()
            {
                return Err(Error::config(format!("{what}: `min_difficulty` must be finite, got {d}")));
            }
            if let Some(p) = &rule.policy {
                if matches!(rule.then, Action::Pin(_)) {
                    return Err(Error::config(format!(
                        "{what} pins a model, so its `policy` would never run: give a policy only to portfolio and tagged rules"
                    )));
                }
                p.validate(catalog)?;
            }
            if let (Some(lo), Some(hi)) = (rule.when.min_input_tokens, rule.when.max_input_tokens)
                && lo > hi
            {
                return Err(Error::config(format!(
                    "{what}: `min_input_tokens` ({lo}) exceeds `max_input_tokens` ({hi})"
                )));
            }
        }
        Ok(())
    }
}
