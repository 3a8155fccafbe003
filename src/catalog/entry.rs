//! A `[[models]]` entry as written in a config: every field optional, and `known = "…"` to fill
//! the fields it does not set from the known-models price table.

use serde::Deserialize;

use super::{Ability, LatencyProfile, ModelProfile, Pricing, known_prices};
use crate::error::Error;
use crate::types::{Capabilities, ModelId, ProviderId};

/// The fields of a [`ModelProfile`], each optional, and `known`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModelEntry {
    #[serde(default)]
    known: Option<String>,
    #[serde(default)]
    id: Option<ModelId>,
    #[serde(default)]
    provider: Option<ProviderId>,
    #[serde(default)]
    api_name: Option<String>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    context_window: Option<u32>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    capabilities: Option<Capabilities>,
    #[serde(default)]
    ability: Option<Ability>,
    #[serde(default)]
    latency: Option<LatencyProfile>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn missing(field: &str) -> Error {
    Error::config(format!("missing field `{field}`"))
}

impl TryFrom<ModelEntry> for ModelProfile {
    type Error = Error;

    /// Without `known`, the fields a profile needs are required, as before `known` existed: `id`,
    /// `provider`, `pricing`, `context_window` and `max_output_tokens` (capabilities default to
    /// none). With it, the table's profile is the base and every field the entry sets replaces the
    /// table's (`pricing` as a whole); `id` defaults to the name given to `known`.
    fn try_from(e: ModelEntry) -> Result<Self, Error> {
        let mut p = match &e.known {
            Some(name) => {
                let mut p = known_prices::profile(name)?;
                if let Some(id) = e.id {
                    p.id = id;
                }
                p
            }
            None => {
                let id = e.id.ok_or_else(|| missing("id"))?;
                let provider = e.provider.clone().ok_or_else(|| missing("provider"))?;
                let pricing = e.pricing.clone().ok_or_else(|| missing("pricing"))?;
                let context_window = e.context_window.ok_or_else(|| missing("context_window"))?;
                let max_output_tokens = e.max_output_tokens.ok_or_else(|| missing("max_output_tokens"))?;
                ModelProfile::new(id, provider)
                    .with_pricing(pricing)
                    .with_context(context_window, max_output_tokens)
                    .with_capabilities(Capabilities::NONE)
            }
        };
        if let Some(provider) = e.provider {
            p.provider = provider;
        }
        if e.api_name.is_some() {
            p.api_name = e.api_name;
        }
        if let Some(pricing) = e.pricing {
            p.pricing = pricing;
        }
        if let Some(window) = e.context_window {
            p.context_window = window;
        }
        if let Some(max) = e.max_output_tokens {
            p.max_output_tokens = max;
        }
        if let Some(caps) = e.capabilities {
            p.capabilities = caps;
        }
        match e.ability {
            Some(ability) => p.ability = ability,
            // The table's ability follows the final api name or id, as `Catalog::new` fills it.
            None if e.known.is_some() => {
                p.ability = p.known_ability().unwrap_or_default();
            }
            None => {}
        }
        if let Some(latency) = e.latency {
            p.latency = latency;
        }
        if let Some(tags) = e.tags {
            p.tags = tags;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, LongContextPricing};

    fn entry(toml_text: &str) -> Result<ModelProfile, String> {
        toml::from_str::<ModelProfile>(toml_text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn known_fills_every_field_and_an_id() {
        let p = entry(r#"known = "claude-sonnet-4""#).unwrap();
        assert_eq!(p, ModelProfile::known("claude-sonnet-4").unwrap());
        assert_eq!(p.id.as_str(), "claude-sonnet-4");
        assert_eq!(p.provider.as_str(), "anthropic");
        assert_eq!(p.api_name(), "claude-sonnet-4-20250514");
        assert_eq!(p.pricing.cached_input_per_mtok, Some(0.30));
        assert_eq!(p.pricing.long_context, Some(LongContextPricing::new(200_000, 2.0, 1.5)));
        assert_eq!((p.context_window, p.max_output_tokens), (200_000, 64_000));
        assert!(p.capabilities.contains(Capabilities::TOOLS | Capabilities::REASONING));
    }

    #[test]
    fn fields_set_in_the_entry_win() {
        let p = entry(
            r#"
            known = "gpt-4o-mini"
            id = "mini"
            provider = "azure"
            context_window = 64000
            capabilities = ["streaming"]
            tags = ["cheap"]
            pricing = { input_per_mtok = 0.1, output_per_mtok = 0.5 }
            ability = { overall = 1.0 }
            latency = { ttft_ms = 300, output_tokens_per_sec = 80 }
            "#,
        )
        .unwrap();
        assert_eq!(p.id.as_str(), "mini");
        assert_eq!(p.provider.as_str(), "azure");
        assert_eq!(p.api_name(), "gpt-4o-mini");
        assert_eq!(p.pricing, Pricing::per_mtok(0.1, 0.5), "pricing is replaced as a whole");
        assert_eq!((p.context_window, p.max_output_tokens), (64_000, 16_384));
        assert_eq!(p.capabilities, Capabilities::STREAMING);
        assert_eq!(p.tags, ["cheap"]);
        assert_eq!(p.ability, Ability::new(1.0));
        assert_eq!(p.latency, LatencyProfile::new(300.0, 80.0));
    }

    #[test]
    fn the_table_ability_follows_the_final_names() {
        let p = entry("known = \"gpt-4o-mini\"\nid = \"mini\"").unwrap();
        assert_eq!(p.ability.known_as(), Some("gpt-4o-mini"));
        let p = entry("known = \"gpt-4o-mini\"\napi_name = \"my-deployment\"\nid = \"mini\"").unwrap();
        assert!(p.ability.is_unset(), "neither the api name nor the id is in the abilities table");
        // As the catalog fills it after a round trip.
        let back: ModelProfile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(Catalog::new(vec![back]).unwrap().models()[0].ability.known_as(), None);
    }

    #[test]
    fn without_known_the_old_fields_are_required() {
        let full = r#"
            id = "m"
            provider = "p"
            context_window = 1000
            max_output_tokens = 100
            pricing = { input_per_mtok = 1, output_per_mtok = 2 }
        "#;
        let p = entry(full).unwrap();
        assert_eq!(p.capabilities, Capabilities::NONE, "a config entry lists its capabilities");
        assert!(p.ability.is_unset());
        assert_eq!(p.api_name, None);
        for (field, cut) in [
            ("id", "id = \"m\""),
            ("provider", "provider = \"p\""),
            ("pricing", "pricing = { input_per_mtok = 1, output_per_mtok = 2 }"),
            ("context_window", "context_window = 1000"),
            ("max_output_tokens", "max_output_tokens = 100"),
        ] {
            let e = entry(&full.replace(cut, "")).unwrap_err();
            assert_eq!(e, format!("missing field `{field}`"));
        }
        assert!(entry(&format!("{full}\nsede = 1")).unwrap_err().contains("unknown field `sede`"));
    }

    #[test]
    fn an_unknown_name_lists_close_ones() {
        let e = entry(r#"known = "claude-sonet-4""#).unwrap_err();
        assert!(e.contains("has no model `claude-sonet-4`") && e.contains("`claude-sonnet-4`"), "{e}");
    }

    #[test]
    fn a_known_profile_round_trips() {
        for name in ["gpt-4o-mini", "gemini-2.5-pro", "deepseek-reasoner", "groq/llama-4-scout"] {
            let p = entry(&format!("known = \"{name}\"")).unwrap();
            let toml_text = toml::to_string(&p).unwrap();
            assert!(!toml_text.contains("known"), "{toml_text}");
            let back = entry(&toml_text).unwrap();
            assert_eq!(Catalog::new(vec![back]).unwrap(), Catalog::new(vec![p]).unwrap(), "{name}");
        }
    }
}
