//! Names that stand for models: [`Group`]s of deployments with a balancing [`Strategy`], and
//! aliases. A request pins one of them with
//! [`Request::with_model`](crate::Request::with_model); [`Resolved`] says what a name stands for.
//!
//! A group is one name for several catalog entries that can serve the same requests (the same
//! model served by two providers, say `gpt-4o@openai` and `gpt-4o@azure`). A request pinned to the
//! group is served by one member, chosen by the group's strategy, and falls back to the others in
//! the strategy's order. An alias is a second name for one model id or one group.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::catalog::{Catalog, ModelId, ModelIndex};
use crate::error::{Error, Result};

/// The longest model name (model id, group name or alias) a request may pin, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// How a [`Group`] spreads the requests pinned to it over its members, and in which order the
/// others take over when the chosen one fails.
///
/// In both, the members that fail a hard constraint for the request (capabilities, context window,
/// an open circuit, the request's allowed and excluded models, ...) are left out of the order, and
/// budgets and rate limits pass over members at execution, as for any candidate.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Weighted random: each request goes first to a member drawn with probability proportional to
    /// its weight, then to the others, each drawn in turn from those left, in proportion to their
    /// weights (members of weight 0 come last, in the group's order).
    ///
    /// 1. The draw is a number `u` in `[0, 1)`. With a [`RouteHints::key`](crate::RouteHints::key)
    ///    it is [`uniform`](crate::uniform)`(key, seed)`, so a key always lands on the same member
    ///    (sticky, good for providers' prompt caches). Without a key it is the `n`-th output of a
    ///    SplitMix64 stream seeded with the router's seed, `n` counting the router's unkeyed pinned
    ///    requests: successive requests spread by weight, and a router with the same seed that is sent
    ///    the same requests in the same order makes the same choices.
    /// 2. The first member is the one whose share of `[0, 1)` (the members' weights laid end to end
    ///    in the group's order, divided by their sum) contains `u`.
    /// 3. The fallbacks are drawn the same way from the members left, with a generator seeded from
    ///    `u`.
    /// 4. Members failing a hard constraint are removed from that order, so a key keeps its member
    ///    while an unrelated member's circuit is open.
    ///
    /// A ranking's score is the member's share of the group's weight.
    #[default]
    Weighted,
    /// Priority order: the first member in the group's order that passes the hard constraints, then
    /// the others in the group's order. Weights do not apply. A ranking's score is minus the
    /// member's position in the group (0 for the first).
    Priority,
}

impl Strategy {
    /// The strategy's name in configs: `"weighted"` or `"priority"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weighted => "weighted",
            Self::Priority => "priority",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named group of catalog models that serve the same requests, with load balancing and failover
/// among them.
///
/// ```
/// use switchyard::catalog::{Group, Strategy};
/// let group = Group::new("gpt-4o", ["gpt-4o@openai", "gpt-4o@azure"]).with_weights([3.0, 1.0]);
/// assert_eq!(group.strategy, Strategy::Weighted);
/// let standby = Group::new("claude", ["claude@anthropic", "claude@bedrock"]).with_strategy(Strategy::Priority);
/// # let _ = standby;
/// ```
///
/// In a config file (`[[groups]]`):
///
/// ```toml
/// [[groups]]
/// name = "gpt-4o"
/// members = ["gpt-4o@openai", "gpt-4o@azure"]
/// strategy = "weighted"     # the default; or "priority"
/// weights = [3.0, 1.0]      # weighted only; default: equal weights
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's name, which requests pin. It must differ from every model id and alias.
    pub name: String,
    /// Catalog ids, each at most once; the order is the priority order, and the order in which
    /// weighted shares are laid out.
    pub members: Vec<ModelId>,
    /// How requests are spread over the members.
    #[serde(default)]
    pub strategy: Strategy,
    /// One weight per member, finite and `>= 0` with a positive sum ([`Strategy::Weighted`] only).
    /// `None`: equal weights.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
}

impl Group {
    /// A group of `members` with the weighted strategy and equal weights.
    pub fn new(name: impl Into<String>, members: impl IntoIterator<Item = impl Into<ModelId>>) -> Self {
        Self {
            name: name.into(),
            members: members.into_iter().map(Into::into).collect(),
            strategy: Strategy::Weighted,
            weights: None,
        }
    }

    /// Sets the strategy.
    #[must_use]
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets one weight per member, in the members' order.
    #[must_use]
    pub fn with_weights(mut self, weights: impl IntoIterator<Item = f64>) -> Self {
        self.weights = Some(weights.into_iter().collect());
        self
    }
}

/// What a name stands for: a model id, a group or an alias.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    /// A catalog model id.
    Model,
    /// A [`Group`]'s name.
    Group,
    /// An alias of a model id or a group.
    Alias,
}

/// What a name a request can pin stands for, from
/// [`Router::resolve`](crate::Router::resolve), [`Router::models`](crate::Router::models) and
/// [`Decision::pinned`](crate::Decision::pinned). Cheap to clone.
///
/// - A **group** (or an alias of one) is served by its members, in its strategy's order.
/// - A **model id** (or an alias of one) is served by that model first; when the model is a member
///   of a group, the group's other members follow as fallbacks, in the group's order (the first
///   group that lists the model, when several do). A model in no group has no fallback.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved(Arc<Entry>);

#[derive(PartialEq, Eq)]
struct Entry {
    name: Arc<str>,
    kind: NameKind,
    target: Arc<str>,
    model: Option<ModelId>,
    group: Option<Arc<str>>,
    strategy: Option<Strategy>,
    members: Vec<ModelId>,
    /// The pinned model's catalog index (model ids and their aliases).
    model_index: Option<ModelIndex>,
    /// The serving group's index in `Names::groups`.
    group_index: Option<usize>,
}

impl Resolved {
    /// The name, as listed or as the request gave it.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether the name is a model id, a group or an alias.
    pub fn kind(&self) -> NameKind {
        self.0.kind
    }

    /// The model id or group name the name stands for: the name itself, unless it is an alias.
    pub fn target(&self) -> &str {
        &self.0.target
    }

    /// The model the name pins, when it names one model (a model id, or an alias of one).
    pub fn model(&self) -> Option<&ModelId> {
        self.0.model.as_ref()
    }

    /// The group whose members serve the request: the named group, or the group the pinned model
    /// belongs to (`None` for a model in no group).
    pub fn group(&self) -> Option<&str> {
        self.0.group.as_deref()
    }

    /// The serving group's strategy, when there is a group.
    pub fn strategy(&self) -> Option<Strategy> {
        self.0.strategy
    }

    /// Every model that may serve the request: a pinned model first, then the group's members in
    /// the group's order.
    pub fn members(&self) -> &[ModelId] {
        &self.0.members
    }

    /// How the decision's note describes the pin.
    pub(crate) fn describe(&self) -> String {
        let e = &*self.0;
        let mut s = match e.kind {
            NameKind::Alias => {
                format!("alias `{}` for {} `{}`", e.name, if e.model.is_some() { "model" } else { "group" }, e.target)
            }
            NameKind::Model => format!("model `{}`", e.name),
            NameKind::Group => format!("group `{}`", e.name),
        };
        match (&e.model, &e.group, e.strategy) {
            (Some(_), Some(group), Some(strategy)) => {
                s.push_str(&format!(", with the other members of group `{group}` ({strategy}) as fallbacks"));
            }
            (Some(_), None, _) => s.push_str(", with no fallback"),
            (None, _, Some(strategy)) => s.push_str(&format!(" ({strategy})")),
            _ => {}
        }
        s
    }
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &*self.0;
        f.debug_struct("Resolved")
            .field("name", &e.name)
            .field("kind", &e.kind)
            .field("target", &e.target)
            .field("group", &e.group)
            .field("strategy", &e.strategy)
            .field("members", &e.members)
            .finish()
    }
}

/// Serialized for listings (`GET /v1/models`):
/// `{"name": "fast", "kind": "alias", "target": "gpt-4o", "model": null, "group": "gpt-4o",
/// "strategy": "weighted", "members": ["gpt-4o@openai", "gpt-4o@azure"]}`.
impl Serialize for Resolved {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            name: &'a str,
            kind: NameKind,
            target: &'a str,
            model: Option<&'a ModelId>,
            group: Option<&'a str>,
            strategy: Option<Strategy>,
            members: &'a [ModelId],
        }
        let e = &*self.0;
        Out {
            name: &e.name,
            kind: e.kind,
            target: &e.target,
            model: e.model.as_ref(),
            group: e.group.as_deref(),
            strategy: e.strategy,
            members: &e.members,
        }
        .serialize(serializer)
    }
}

/// A group checked against the catalog.
struct Compiled {
    strategy: Strategy,
    members: Vec<ModelIndex>,
    /// Each member's share of the group's weight (sum 1).
    shares: Vec<f64>,
}

/// Every name a request can pin, checked against the catalog: model ids, groups and aliases.
pub(crate) struct Names {
    groups: Vec<Compiled>,
    by_name: HashMap<Arc<str>, Resolved>,
    /// Model ids in catalog order, then groups in their order, then aliases by name.
    listing: Vec<Resolved>,
}

/// A member of a pin's balance order, with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ranked {
    pub(crate) model: ModelIndex,
    pub(crate) score: f64,
}

impl Names {
    /// Checks `groups` and `aliases` against `catalog` and each other.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an empty or duplicate name, a group name
    /// or alias that is also a model id (or an alias that is a group name), an empty group, a member
    /// that is not in the catalog or is listed twice, weights that are not one per member, not
    /// finite and `>= 0`, sum to 0, or are set on a priority group, and an alias whose target is
    /// unknown or is itself an alias.
    pub(crate) fn new(catalog: &Catalog, groups: &[Group], aliases: &[(String, String)]) -> Result<Self> {
        let mut compiled = Vec::with_capacity(groups.len());
        let mut group_index: HashMap<&str, usize> = HashMap::with_capacity(groups.len());
        for (gi, g) in groups.iter().enumerate() {
            compiled.push(compile(catalog, g)?);
            if group_index.insert(g.name.as_str(), gi).is_some() {
                return Err(Error::config(format!("group `{}` is defined twice", g.name)));
            }
        }
        // The first group that lists each model.
        let mut home: Vec<Option<usize>> = vec![None; catalog.len()];
        for (gi, g) in compiled.iter().enumerate() {
            for &m in &g.members {
                if home[m].is_none() {
                    home[m] = Some(gi);
                }
            }
        }
        let group_name = |gi: usize| -> Arc<str> { Arc::from(groups[gi].name.as_str()) };
        let members_of = |gi: usize, first: Option<ModelIndex>| -> Vec<ModelId> {
            first
                .into_iter()
                .chain(compiled[gi].members.iter().copied().filter(|&m| Some(m) != first))
                .map(|m| catalog.model(m).id.clone())
                .collect()
        };
        let model_entry = |name: Arc<str>, kind: NameKind, idx: ModelIndex| {
            let id = catalog.model(idx).id.clone();
            let gi = home[idx];
            Resolved(Arc::new(Entry {
                name,
                kind,
                target: Arc::from(id.as_str()),
                group: gi.map(group_name),
                strategy: gi.map(|gi| compiled[gi].strategy),
                members: gi.map_or_else(|| vec![id.clone()], |gi| members_of(gi, Some(idx))),
                model: Some(id),
                model_index: Some(idx),
                group_index: gi,
            }))
        };
        let group_entry = |name: Arc<str>, kind: NameKind, gi: usize| {
            Resolved(Arc::new(Entry {
                name,
                kind,
                target: group_name(gi),
                model: None,
                group: Some(group_name(gi)),
                strategy: Some(compiled[gi].strategy),
                members: members_of(gi, None),
                model_index: None,
                group_index: Some(gi),
            }))
        };

        let mut listing = Vec::with_capacity(catalog.len() + groups.len() + aliases.len());
        for (idx, m) in catalog.models().iter().enumerate() {
            listing.push(model_entry(Arc::from(m.id.as_str()), NameKind::Model, idx));
        }
        for gi in 0..groups.len() {
            listing.push(group_entry(group_name(gi), NameKind::Group, gi));
        }
        let mut sorted: Vec<&(String, String)> = aliases.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (name, target)) in sorted.iter().map(|a| (&a.0, &a.1)).enumerate() {
            check_name("alias", name)?;
            if catalog.index_of(name).is_some() {
                return Err(Error::config(format!("alias `{name}` is also a model id: give it another name")));
            }
            if group_index.contains_key(name.as_str()) {
                return Err(Error::config(format!("alias `{name}` is also a group name: give it another name")));
            }
            if i > 0 && sorted[i - 1].0 == *name {
                return Err(Error::config(format!("alias `{name}` is defined twice")));
            }
            let name: Arc<str> = Arc::from(name.as_str());
            let entry = if let Some(idx) = catalog.index_of(target) {
                model_entry(name, NameKind::Alias, idx)
            } else if let Some(&gi) = group_index.get(target.as_str()) {
                group_entry(name, NameKind::Alias, gi)
            } else if aliases.iter().any(|(a, _)| a == target) {
                return Err(Error::config(format!(
                    "alias `{name}` points at alias `{target}`: an alias must name a model id or a group"
                )));
            } else {
                return Err(Error::config(format!(
                    "alias `{name}` points at `{target}`, which is neither a model id nor a group"
                )));
            };
            listing.push(entry);
        }
        let by_name = listing.iter().map(|r| (Arc::clone(&r.0.name), r.clone())).collect();
        Ok(Self { groups: compiled, by_name, listing })
    }

    /// What `name` stands for.
    pub(crate) fn resolve(&self, name: &str) -> Option<&Resolved> {
        self.by_name.get(name)
    }

    /// Every name, for listings.
    pub(crate) fn listing(&self) -> &[Resolved] {
        &self.listing
    }

    /// Whether ordering `pin` reads the draw `u` (a weighted group with more than one member).
    pub(crate) fn draws(&self, pin: &Resolved) -> bool {
        pin.0
            .group_index
            .and_then(|gi| self.groups.get(gi))
            .is_some_and(|g| g.strategy == Strategy::Weighted && g.members.len() > 1)
    }

    /// `pin`'s balance order over every model that may serve it, for the draw `u` in `[0, 1)`: the
    /// pinned model first (if any), then the group's members in its strategy's order.
    pub(crate) fn order(&self, pin: &Resolved, u: f64) -> SmallVec<[Ranked; 8]> {
        let e = &*pin.0;
        let mut out: SmallVec<[Ranked; 8]> = SmallVec::new();
        let Some(group) = e.group_index.and_then(|gi| self.groups.get(gi)) else {
            if let Some(m) = e.model_index {
                out.push(Ranked { model: m, score: 0.0 });
            }
            return out;
        };
        let score = |pos: usize| match group.strategy {
            Strategy::Priority => -(pos as f64),
            Strategy::Weighted => group.shares[pos],
        };
        let mut positions: SmallVec<[usize; 8]> = (0..group.members.len()).collect();
        if group.strategy == Strategy::Weighted {
            weighted_order(&group.shares, u, &mut positions);
        }
        if let Some(m) = e.model_index {
            let pos = group.members.iter().position(|&x| x == m).unwrap_or(0);
            out.push(Ranked { model: m, score: score(pos) });
        }
        for pos in positions {
            let model = group.members[pos];
            if Some(model) != e.model_index {
                out.push(Ranked { model, score: score(pos) });
            }
        }
        out
    }
}

/// Reorders `positions` (`0..shares.len()`) into a weighted random order: the first drawn with `u`,
/// the rest drawn in turn from those left with a generator seeded from `u`; zero shares last.
fn weighted_order(shares: &[f64], u: f64, positions: &mut SmallVec<[usize; 8]>) {
    let mut rng = crate::hash::Rng::new(u.to_bits());
    let mut draw = u;
    for start in 0..positions.len() {
        let total: f64 = positions[start..].iter().map(|&p| shares[p]).sum();
        if total <= 0.0 {
            // Only zero weights left: they keep the group's order.
            positions[start..].sort_unstable();
            return;
        }
        let target = draw.clamp(0.0, 1.0) * total;
        let mut acc = 0.0;
        let mut pick = start;
        for (i, &p) in positions.iter().enumerate().skip(start) {
            if shares[p] <= 0.0 {
                continue;
            }
            pick = i;
            acc += shares[p];
            if target < acc {
                break;
            }
        }
        // Keep the members not yet drawn in the group's order, so that later draws are laid out the
        // same way whatever came before.
        positions[start..=pick].rotate_right(1);
        draw = rng.unit();
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::config(format!("a {what} name must not be empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::config(format!(
            "a {what} name is {} bytes, above the limit of {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

fn compile(catalog: &Catalog, g: &Group) -> Result<Compiled> {
    check_name("group", &g.name)?;
    let name = &g.name;
    if catalog.index_of(name).is_some() {
        return Err(Error::config(format!("group `{name}` has the name of a model id: give it another name")));
    }
    if g.members.is_empty() {
        return Err(Error::config(format!("group `{name}` has no members")));
    }
    let mut members = Vec::with_capacity(g.members.len());
    for id in &g.members {
        let idx = catalog.require(id, &format!("group `{name}`"))?;
        if members.contains(&idx) {
            return Err(Error::config(format!("group `{name}` lists model `{id}` twice")));
        }
        members.push(idx);
    }
    let shares = match (&g.weights, g.strategy) {
        (None, _) => vec![1.0 / members.len() as f64; members.len()],
        (Some(_), Strategy::Priority) => {
            return Err(Error::config(format!(
                "group `{name}` sets weights, which only the weighted strategy uses: remove them or set `strategy = \"weighted\"`"
            )));
        }
        (Some(w), _) => {
            if w.len() != members.len() {
                return Err(Error::config(format!(
                    "group `{name}` has {} weights for {} members: give one weight per member",
                    w.len(),
                    members.len()
                )));
            }
            if let Some((i, x)) = w.iter().enumerate().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
                return Err(Error::config(format!(
                    "group `{name}`: the weight of `{}` must be finite and >= 0, got {x}",
                    g.members[i]
                )));
            }
            let sum: f64 = w.iter().sum();
            if !(sum > 0.0 && sum.is_finite()) {
                return Err(Error::config(format!(
                    "group `{name}`: the weights sum to {sum}; at least one must be positive"
                )));
            }
            w.iter().map(|x| x / sum).collect()
        }
    };
    Ok(Compiled { strategy: g.strategy, members, shares })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelProfile;
    use crate::error::ErrorKind;

    fn catalog() -> Catalog {
        Catalog::new(["a", "b", "c", "d"].map(|id| ModelProfile::new(id, "sim"))).unwrap()
    }

    fn names(groups: &[Group], aliases: &[(&str, &str)]) -> Result<Names> {
        let aliases: Vec<(String, String)> = aliases.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect();
        Names::new(&catalog(), groups, &aliases)
    }

    fn ids(names: &Names, pin: &str, u: f64) -> Vec<String> {
        let cat = catalog();
        let pin = names.resolve(pin).unwrap();
        names.order(pin, u).iter().map(|r| cat.model(r.model).id.to_string()).collect()
    }

    #[test]
    fn resolves_models_groups_and_aliases() {
        let n = names(
            &[Group::new("ab", ["a", "b"]).with_strategy(Strategy::Priority), Group::new("bc", ["b", "c"])],
            &[("fast", "ab"), ("cee", "c")],
        )
        .unwrap();
        let listed: Vec<&str> = n.listing().iter().map(Resolved::name).collect();
        assert_eq!(listed, ["a", "b", "c", "d", "ab", "bc", "cee", "fast"]);
        let fast = n.resolve("fast").unwrap();
        assert_eq!((fast.kind(), fast.target(), fast.group()), (NameKind::Alias, "ab", Some("ab")));
        assert_eq!(fast.model(), None);
        assert_eq!(fast.strategy(), Some(Strategy::Priority));
        // `b` is in two groups: its home is the first, `ab`.
        let b = n.resolve("b").unwrap();
        assert_eq!((b.group(), b.members()), (Some("ab"), &[ModelId::from("b"), ModelId::from("a")][..]));
        assert_eq!(ids(&n, "b", 0.3), ["b", "a"]);
        let d = n.resolve("d").unwrap();
        assert_eq!((d.group(), d.strategy()), (None, None));
        assert_eq!(ids(&n, "d", 0.3), ["d"]);
        assert_eq!(ids(&n, "cee", 0.0), ["c", "b"]);
        assert_eq!(ids(&n, "fast", 0.99), ["a", "b"]);
        assert!(n.resolve("nope").is_none());
        assert!(!n.draws(fast) && n.draws(n.resolve("bc").unwrap()) && !n.draws(d));
        assert!(fast.describe().contains("alias `fast` for group `ab` (priority)"), "{}", fast.describe());
        assert!(d.describe().contains("no fallback"));
    }

    #[test]
    fn weighted_order_follows_the_shares() {
        let n = names(&[Group::new("g", ["a", "b", "c", "d"]).with_weights([1.0, 0.0, 2.0, 1.0])], &[]).unwrap();
        // Shares laid end to end: a [0, .25), c [.25, .75), d [.75, 1); b never first.
        assert_eq!(ids(&n, "g", 0.1)[0], "a");
        assert_eq!(ids(&n, "g", 0.5)[0], "c");
        assert_eq!(ids(&n, "g", 0.9)[0], "d");
        for i in 0..100 {
            let order = ids(&n, "g", f64::from(i) / 100.0);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, ["a", "b", "c", "d"]);
            assert_eq!(order[3], "b", "the zero weight comes last: {order:?}");
        }
        let scores: Vec<f64> = n.order(n.resolve("g").unwrap(), 0.5).iter().map(|r| r.score).collect();
        assert_eq!(scores[0], 0.5);
    }

    #[test]
    fn bad_groups_and_aliases_are_config_errors() {
        for (groups, aliases, message) in [
            (vec![Group::new("g", Vec::<&str>::new())], vec![], "has no members"),
            (vec![Group::new("g", ["a", "zz"])], vec![], "`zz`, which is not in the catalog"),
            (vec![Group::new("g", ["a", "a"])], vec![], "lists model `a` twice"),
            (vec![Group::new("a", ["b"])], vec![], "name of a model id"),
            (vec![Group::new("g", ["a"]), Group::new("g", ["b"])], vec![], "defined twice"),
            (vec![Group::new("", ["a"])], vec![], "must not be empty"),
            (vec![Group::new("g", ["a", "b"]).with_weights([1.0])], vec![], "1 weights for 2 members"),
            (vec![Group::new("g", ["a", "b"]).with_weights([1.0, f64::NAN])], vec![], "weight of `b`"),
            (vec![Group::new("g", ["a", "b"]).with_weights([1.0, -1.0])], vec![], "finite and >= 0"),
            (vec![Group::new("g", ["a", "b"]).with_weights([f64::INFINITY, 1.0])], vec![], "finite"),
            (vec![Group::new("g", ["a", "b"]).with_weights([0.0, 0.0])], vec![], "at least one must be positive"),
            (
                vec![Group::new("g", ["a"]).with_strategy(Strategy::Priority).with_weights([1.0])],
                vec![],
                "only the weighted strategy",
            ),
            (vec![], vec![("x", "nope")], "neither a model id nor a group"),
            (vec![], vec![("x", "y"), ("y", "a")], "points at alias `y`"),
            (vec![], vec![("a", "b")], "alias `a` is also a model id"),
            (vec![Group::new("g", ["a"])], vec![("g", "a")], "also a group name"),
            (vec![], vec![("x", "a"), ("x", "b")], "defined twice"),
        ] {
            let e = names(&groups, &aliases).err().unwrap_or_else(|| panic!("{message}: no error"));
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(message), "{e} (expected {message})");
        }
    }
}
