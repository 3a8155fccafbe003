//! Catalog entries from a price file in the shape of LiteLLM's
//! `model_prices_and_context_window.json`, which the user supplies: nothing is downloaded.

use serde_json::{Map, Value};

use super::{LongContextPricing, ModelProfile, Pricing};
use crate::error::{Error, Result};
use crate::types::Capabilities;

/// Profiles of the chat models of a price file in the shape of LiteLLM's
/// `model_prices_and_context_window.json`: a JSON object from model name to its entry.
///
/// An entry becomes a profile when its `mode` is `chat` (or absent) and it gives
/// `input_cost_per_token`, `output_cost_per_token` and `max_input_tokens` (the context window), and
/// `max_output_tokens` (or the legacy `max_tokens`) no larger than the window. Others (embeddings,
/// images, per-second prices, the `sample_spec` entry) are skipped. The profile's
///
/// - id is the entry's name; provider its `litellm_provider` (`gemini` becomes `google`, as in
///   the known-models table); API name the name without a leading `"{litellm_provider}/"`;
/// - prices are the per-token prices times 10⁶: `input_cost_per_token`,
///   `cache_read_input_token_cost`, `output_cost_per_token`, and a long-context tier from
///   `input_cost_per_token_above_{N}k_tokens` (and the output one) as multipliers of the base
///   prices, above N × 1000 input tokens (the lowest `N` when an entry has several);
/// - capabilities are `supports_function_calling` (tools), `supports_vision`,
///   `supports_response_schema` (json), `supports_reasoning`, and streaming unless
///   `supports_native_streaming` is `false`.
///
/// Latency, ability and tags keep the defaults of [`ModelProfile::new`] (a known model's ability is
/// filled when the catalog is built). Profiles come sorted by name.
///
/// ```
/// let file = r#"{
///   "gpt-4o-mini": {
///     "litellm_provider": "openai", "mode": "chat",
///     "input_cost_per_token": 1.5e-07, "cache_read_input_token_cost": 7.5e-08,
///     "output_cost_per_token": 6e-07, "max_input_tokens": 128000, "max_output_tokens": 16384,
///     "supports_function_calling": true, "supports_vision": true
///   },
///   "text-embedding-3-small": { "litellm_provider": "openai", "mode": "embedding" }
/// }"#;
/// let models = switchyard::catalog::from_litellm_json(file)?;
/// assert_eq!(models.len(), 1);
/// assert_eq!(models[0].pricing.output_per_mtok, 0.6);
/// # Ok::<(), switchyard::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) when the text is not a JSON object, or an entry
/// that would become a profile has an invalid value (a negative price, say); the message names
/// the entry.
pub fn from_litellm_json(text: &str) -> Result<Vec<ModelProfile>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::config(format!("the price file is not JSON: line {}, column {}", e.line(), e.column())))?;
    let Value::Object(entries) = value else {
        return Err(Error::config("the price file is not a JSON object from model name to entry"));
    };
    let mut models = Vec::new();
    for (name, entry) in &entries {
        let Value::Object(entry) = entry else { continue };
        if let Some(profile) = profile(name, entry) {
            profile.validate().map_err(|e| Error::config(format!("price file entry `{name}`: {e}")))?;
            models.push(profile);
        }
    }
    // Sorted here, whatever order the JSON map keeps its keys in.
    models.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(models)
}

fn number(entry: &Map<String, Value>, key: &str) -> Option<f64> {
    entry.get(key).and_then(Value::as_f64)
}

fn flag(entry: &Map<String, Value>, key: &str) -> Option<bool> {
    entry.get(key).and_then(Value::as_bool)
}

fn tokens(entry: &Map<String, Value>, key: &str) -> Option<u32> {
    entry.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0)
}

/// USD per token as USD per 1M tokens, rounded to 10⁻⁶ so that `2.5e-06` reads `2.5`.
fn per_mtok(per_token: f64) -> f64 {
    (per_token * 1e12).round() / 1e6
}

fn profile(name: &str, entry: &Map<String, Value>) -> Option<ModelProfile> {
    if !matches!(entry.get("mode").and_then(Value::as_str), None | Some("chat")) {
        return None;
    }
    let input = number(entry, "input_cost_per_token")?;
    let output = number(entry, "output_cost_per_token")?;
    let window = tokens(entry, "max_input_tokens")?;
    let max_output = tokens(entry, "max_output_tokens").or_else(|| tokens(entry, "max_tokens"))?;
    if max_output > window {
        return None;
    }
    let litellm_provider = entry.get("litellm_provider").and_then(Value::as_str)?;
    let provider = match litellm_provider {
        "gemini" => "google",
        other => other,
    };
    let api_name = name.strip_prefix(litellm_provider).and_then(|n| n.strip_prefix('/')).unwrap_or(name);

    let mut pricing = Pricing::per_mtok(per_mtok(input), per_mtok(output));
    pricing.cached_input_per_mtok = number(entry, "cache_read_input_token_cost").map(per_mtok);
    pricing.long_context = long_context(entry, input, output);

    let mut caps = Capabilities::NONE;
    for (key, cap) in [
        ("supports_function_calling", Capabilities::TOOLS),
        ("supports_vision", Capabilities::VISION),
        ("supports_response_schema", Capabilities::JSON),
        ("supports_reasoning", Capabilities::REASONING),
    ] {
        if flag(entry, key) == Some(true) {
            caps |= cap;
        }
    }
    if flag(entry, "supports_native_streaming") != Some(false) {
        caps |= Capabilities::STREAMING;
    }
    let mut profile = ModelProfile::new(name, provider)
        .with_pricing(pricing)
        .with_context(window, max_output)
        .with_capabilities(caps);
    if api_name != name {
        profile = profile.with_api_name(api_name);
    }
    Some(profile)
}

/// The tier of the `input_cost_per_token_above_{N}k_tokens` key with the lowest `N` (the first
/// price step; a profile holds one tier).
fn long_context(entry: &Map<String, Value>, input: f64, output: f64) -> Option<LongContextPricing> {
    if input <= 0.0 {
        return None;
    }
    let tiers = entry.iter().filter_map(|(key, value)| {
        let thousands: u32 = key.strip_prefix("input_cost_per_token_above_")?.strip_suffix("k_tokens")?.parse().ok()?;
        let above_input = value.as_f64()?;
        let above_output = number(entry, &format!("output_cost_per_token_above_{thousands}k_tokens"));
        let output_multiplier = match above_output {
            Some(o) if output > 0.0 => o / output,
            _ => 1.0,
        };
        Some((thousands, LongContextPricing::new(thousands.checked_mul(1000)?, above_input / input, output_multiplier)))
    });
    tiers.min_by_key(|(thousands, _)| *thousands).map(|(_, tier)| tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_tier_is_kept_and_profiles_come_sorted_whatever_the_key_order() {
        let file = r#"{
          "zeta": { "litellm_provider": "openai", "mode": "chat",
            "max_input_tokens": 1000000, "max_output_tokens": 8192,
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "input_cost_per_token_above_1000k_tokens": 4e-06,
            "input_cost_per_token_above_200k_tokens": 2e-06,
            "output_cost_per_token_above_200k_tokens": 3e-06 },
          "alpha": { "litellm_provider": "openai", "mode": "chat",
            "max_input_tokens": 128000, "max_output_tokens": 8192,
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06 }
        }"#;
        let models = from_litellm_json(file).unwrap();
        let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["alpha", "zeta"]);
        let tier = models[1].pricing.long_context.as_ref().unwrap();
        assert_eq!(tier.above_input_tokens, 200_000);
        assert!((tier.input_multiplier - 2.0).abs() < 1e-9 && (tier.output_multiplier - 1.5).abs() < 1e-9);
        assert!(models[0].pricing.long_context.is_none());
    }
}
