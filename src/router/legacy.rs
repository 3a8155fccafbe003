//! Configs written for v0.1's relative cost weight: converted when the old fields say exactly what
//! to do, refused with what to write instead when they do not.
//!
//! v0.1's [`Utility`](crate::Utility) and [`Bandit`](crate::policy::experiment::Bandit) scored
//! `p − λ·c/c_ref − μ·l/l_ref`, with `c_ref` the dearest candidate unless `cost_ref_usd` fixed it and
//! `l_ref` the slowest candidate: a model that was never chosen could change the choice. v0.2 scores
//! `V·p − c − μ·l` in USD. With a fixed `cost_ref_usd` the old score is the new one divided by
//! `V = cost_ref_usd / cost_weight`, so the choices are the same and the config is converted (with a
//! warning). Without one, or with a latency weight, no fixed `V` or `μ` makes the same choices, and
//! loading fails with a message that says what to write.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::policy::DEFAULT_ANSWER_VALUE_USD;

/// The fields only v0.1 configs have; a config whose text holds none of them is not walked.
pub(super) const FIELDS: [&str; 3] = ["cost_weight", "cost_ref_usd", "latency_weight"];

/// Rewrites every v0.1 policy in `config` (a parsed config file) in place. Returns whether anything
/// was rewritten.
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) for a v0.1 field with no v0.2 equivalent, naming
/// the field and what to write instead.
pub(super) fn migrate(config: &mut Value) -> Result<bool> {
    match config.get_mut("policy") {
        Some(policy) => migrate_policy(policy, "policy"),
        None => Ok(false),
    }
}

fn migrate_policy(policy: &mut Value, at: &str) -> Result<bool> {
    let Some(map) = policy.as_object_mut() else { return Ok(false) };
    let mut changed = match map.get("kind").and_then(Value::as_str) {
        Some("utility" | "bandit") => migrate_weights(map, at)?,
        _ => false,
    };
    if let Some(default) = map.get_mut("default") {
        changed |= migrate_policy(default, &format!("{at}.default"))?;
    }
    for list in ["rules", "arms"] {
        if let Some(Value::Array(items)) = map.get_mut(list) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Some(p) = item.get_mut("policy") {
                    changed |= migrate_policy(p, &format!("{at}.{list}[{i}].policy"))?;
                }
            }
        }
    }
    if let Some(reward) = map
        .get_mut("sequential_test")
        .and_then(|t| t.get_mut("metric"))
        .and_then(|m| m.get_mut("reward"))
        .and_then(Value::as_object_mut)
    {
        changed |= migrate_weights(reward, &format!("{at}.sequential_test.metric.reward"))?;
    }
    Ok(changed)
}

/// Replaces `cost_weight` and `cost_ref_usd` by `answer_value_usd`, and drops a zero
/// `latency_weight`.
fn migrate_weights(map: &mut Map<String, Value>, at: &str) -> Result<bool> {
    let number = |map: &Map<String, Value>, key: &str| -> Result<Option<f64>> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| Error::config(format!("`{at}.{key}`: expected a number"))),
        }
    };
    let lambda = number(map, "cost_weight")?;
    let cost_ref = number(map, "cost_ref_usd")?;
    let latency = number(map, "latency_weight")?;
    if lambda.is_none() && cost_ref.is_none() && latency.is_none() {
        return Ok(false);
    }
    if let Some(mu) = latency.filter(|&mu| mu != 0.0) {
        return Err(Error::config(format!(
            "`{at}.latency_weight = {mu}` weighed latency against the slowest candidate, so a model that was \
             never chosen could change the choice; write `latency_usd_per_sec`, what one second of expected \
             latency costs you in USD, instead (docs/migration/v0.2.md)"
        )));
    }
    map.remove("latency_weight");
    if lambda.is_none() && cost_ref.is_none() {
        return Ok(true);
    }
    if map.contains_key("answer_value_usd") {
        return Err(Error::config(format!(
            "`{at}`: `cost_weight` and `cost_ref_usd` are replaced by `answer_value_usd`; remove them"
        )));
    }
    let lambda = lambda.unwrap_or(1.0);
    let Some(cost_ref) = cost_ref else {
        return Err(Error::config(format!(
            "`{at}.cost_weight = {lambda}` weighed cost against the dearest candidate, so a model that was never \
             chosen could change the choice; write `answer_value_usd`, what an acceptable answer is worth in USD \
             (the default is {DEFAULT_ANSWER_VALUE_USD}), instead, or find the value that meets a target quality \
             or spend with `switchyard_eval::calibrate` (docs/migration/v0.2.md)"
        )));
    };
    if !(lambda.is_finite() && lambda > 0.0 && cost_ref.is_finite() && cost_ref > 0.0) {
        return Err(Error::config(format!(
            "`{at}`: `cost_weight = {lambda}` with `cost_ref_usd = {cost_ref}` has no answer value; write \
             `answer_value_usd`, what an acceptable answer is worth in USD (a large value ignores cost) \
             (docs/migration/v0.2.md)"
        )));
    }
    let value = cost_ref / lambda;
    tracing::warn!(
        "`{at}`: read `cost_weight = {lambda}`, `cost_ref_usd = {cost_ref}` as `answer_value_usd = {value}`, \
         which makes the same choices; write that instead"
    );
    map.remove("cost_weight");
    map.remove("cost_ref_usd");
    map.insert("answer_value_usd".to_owned(), Value::from(value));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::migrate;

    #[test]
    fn a_fixed_reference_converts_exactly_and_a_relative_one_says_what_to_write() {
        let mut c =
            json!({ "policy": { "kind": "utility", "cost_weight": 2.0, "cost_ref_usd": 0.01, "latency_weight": 0.0 } });
        assert!(migrate(&mut c).unwrap());
        assert_eq!(c, json!({ "policy": { "kind": "utility", "answer_value_usd": 0.005 } }));

        let mut c = json!({ "policy": { "kind": "rules", "default": { "kind": "bandit", "cost_weight": 1.0 } } });
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(e.contains("policy.default.cost_weight") && e.contains("answer_value_usd"), "{e}");

        let mut c = json!({ "policy": { "kind": "utility", "latency_weight": 0.5 } });
        let e = migrate(&mut c).unwrap_err().to_string();
        assert!(e.contains("latency_usd_per_sec"), "{e}");

        let mut c = json!({ "policy": { "kind": "experiment", "arms": [
            { "name": "a", "policy": { "kind": "utility", "cost_ref_usd": 0.02 } }
        ], "sequential_test": { "metric": { "reward": { "cost_weight": 0.5, "cost_ref_usd": 0.005 } } } } });
        assert!(migrate(&mut c).unwrap());
        assert_eq!(c["policy"]["arms"][0]["policy"], json!({ "kind": "utility", "answer_value_usd": 0.02 }));
        assert_eq!(c["policy"]["sequential_test"]["metric"]["reward"], json!({ "answer_value_usd": 0.01 }));

        for bad in [
            json!({ "kind": "utility", "cost_weight": 0.0, "cost_ref_usd": 0.01 }),
            json!({ "kind": "utility", "cost_weight": 1.0, "cost_ref_usd": 0.01, "answer_value_usd": 1.0 }),
            json!({ "kind": "utility", "cost_weight": "x", "cost_ref_usd": 0.01 }),
        ] {
            assert!(migrate(&mut json!({ "policy": bad })).is_err());
        }
        let mut untouched = json!({ "policy": { "kind": "cheapest_capable", "quality_floor": 0.8 } });
        assert!(!migrate(&mut untouched).unwrap());
    }
}
