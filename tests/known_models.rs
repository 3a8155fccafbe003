//! The known-models price table through the public API: `ModelProfile::known`, `known = "…"` in
//! configs (examples/known.toml), and the price-file import behind `examples/known_models.rs`.

use switchyard::catalog::{LongContextPricing, from_litellm_json};
use switchyard::{Capabilities, Catalog, ErrorKind, ModelProfile, Request, Router, RouterConfig, SimulatedProvider};

#[allow(dead_code, reason = "the test uses the example's writers, not its `main`")]
#[path = "../examples/known_models.rs"]
mod known_models_example;

fn manifest_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn fixture() -> Vec<ModelProfile> {
    let text =
        std::fs::read_to_string(manifest_path("tests/data/litellm_prices.json")).expect("the fixture is readable");
    from_litellm_json(&text).expect("the fixture parses")
}

#[test]
fn known_profiles_from_names_with_prefixes_and_dates() {
    let p = ModelProfile::known("openai/gpt-4.1-2025-04-14").unwrap();
    assert_eq!(p.id.as_str(), "openai/gpt-4.1-2025-04-14");
    assert_eq!(p.provider.as_str(), "openai");
    assert_eq!(p.api_name(), "gpt-4.1-2025-04-14");
    assert_eq!(
        (p.pricing.input_per_mtok, p.pricing.cached_input_per_mtok, p.pricing.output_per_mtok),
        (2.0, Some(0.5), 8.0)
    );
    assert_eq!((p.context_window, p.max_output_tokens), (1_047_576, 32_768));
    assert_eq!(p.ability.known_as(), Some("gpt-4.1"));

    let pro = ModelProfile::known("models/Gemini-2.5-Pro").unwrap();
    assert_eq!(pro.provider.as_str(), "google");
    assert_eq!(pro.pricing.long_context, Some(LongContextPricing::new(200_000, 2.0, 1.5)));
    assert!(pro.capabilities.contains(Capabilities::REASONING | Capabilities::VISION));

    let haiku = ModelProfile::known("claude-3.5-haiku").unwrap();
    assert_eq!(haiku.api_name(), "claude-3-5-haiku-20241022");

    // Every field can be overridden afterwards.
    let mine = ModelProfile::known("gpt-4o-mini").unwrap().with_context(64_000, 4_096).with_tag("cheap");
    assert_eq!((mine.context_window, mine.max_output_tokens), (64_000, 4_096));
}

#[test]
fn unknown_names_are_config_errors_with_suggestions() {
    let e = ModelProfile::known("gpt-4.1-mnii").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("`gpt-4.1-mini`"), "{e}");
    let e = RouterConfig::from_toml_str("[[models]]\nknown = \"claude-opus-4-2\"\n").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let message = e.to_string();
    assert!(message.contains("models[0]") && message.contains("`claude-opus-4`"), "{message}");
}

#[test]
fn the_example_config_loads_and_routes() {
    let config = RouterConfig::from_file(manifest_path("examples/known.toml")).unwrap();
    let ids: Vec<&str> = config.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "gpt-4.1", "sonnet", "gemini-2.5-flash", "gpt-4o@azure"]);
    let sonnet = &config.models[2];
    assert_eq!((sonnet.provider.as_str(), sonnet.api_name()), ("anthropic", "claude-sonnet-4-20250514"));
    assert_eq!(config.models[3].tags, ["eu"]);
    let azure = &config.models[4];
    assert_eq!((azure.provider.as_str(), azure.api_name()), ("azure", "gpt-4o"));
    assert_eq!(azure.pricing, ModelProfile::known("gpt-4o").unwrap().pricing);

    let mut builder = config.builder().unwrap();
    for name in ["openai", "anthropic", "google", "azure"] {
        builder = builder.provider(SimulatedProvider::new(name));
    }
    let router: Router = builder.build().unwrap();
    let decision = router.route(&Request::new("Say hello.")).unwrap();
    assert!(ids.contains(&decision.model().as_str()));

    // Written out and read back, the config builds the same catalog (table abilities are not
    // written out; the catalog fills them again).
    let back = RouterConfig::from_toml_str(&config.to_toml_string().unwrap()).unwrap();
    assert!(!config.to_toml_string().unwrap().contains("known"));
    assert_eq!(Catalog::new(back.models).unwrap(), Catalog::new(config.models.clone()).unwrap());
}

#[test]
fn the_price_file_parser_reads_chat_models_and_skips_the_rest() {
    let models = fixture();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "claude-sonnet-4-20250514",
            "cloudflare/@cf/meta/llama-2-7b-chat-fp16",
            "gemini/gemini-2.5-pro",
            "gpt-4o-mini",
            "groq/llama-3.1-8b-instant",
            "o1-pro-streamless",
        ],
        "chat models with token prices and limits, by name"
    );
    let get = |id: &str| models.iter().find(|m| m.id.as_str() == id).unwrap();
    let mini = get("gpt-4o-mini");
    assert_eq!(mini.provider.as_str(), "openai");
    assert_eq!(mini.api_name, None);
    assert_eq!(
        (mini.pricing.input_per_mtok, mini.pricing.cached_input_per_mtok, mini.pricing.output_per_mtok),
        (0.15, Some(0.075), 0.6)
    );
    assert_eq!(
        mini.capabilities,
        Capabilities::TOOLS | Capabilities::VISION | Capabilities::JSON | Capabilities::STREAMING
    );
    // The same numbers as the built-in table.
    let table = ModelProfile::known("gpt-4o-mini").unwrap();
    assert_eq!(
        (mini.pricing.clone(), mini.context_window, mini.max_output_tokens),
        (table.pricing, table.context_window, table.max_output_tokens)
    );

    let sonnet = get("claude-sonnet-4-20250514");
    assert_eq!(sonnet.pricing.long_context, Some(LongContextPricing::new(200_000, 2.0, 1.5)));
    assert_eq!(sonnet.context_window, 1_000_000);
    let gemini = get("gemini/gemini-2.5-pro");
    assert_eq!((gemini.provider.as_str(), gemini.api_name()), ("google", "gemini-2.5-pro"));
    assert_eq!(gemini.pricing.long_context, Some(LongContextPricing::new(200_000, 2.0, 1.5)));
    let groq = get("groq/llama-3.1-8b-instant");
    assert_eq!((groq.provider.as_str(), groq.api_name()), ("groq", "llama-3.1-8b-instant"));
    assert_eq!(groq.pricing.cached_input_per_mtok, None);
    let streamless = get("o1-pro-streamless");
    assert!(!streamless.capabilities.contains(Capabilities::STREAMING));
    assert!(streamless.capabilities.contains(Capabilities::REASONING));
    assert_eq!(get("cloudflare/@cf/meta/llama-2-7b-chat-fp16").pricing.input_per_mtok, 1.923);
}

#[test]
fn the_price_file_parser_rejects_what_is_not_a_price_file() {
    for bad in ["", "[1, 2]", "{\"m\": ", "not json"] {
        assert_eq!(from_litellm_json(bad).unwrap_err().kind(), ErrorKind::Config, "{bad}");
    }
    let negative = r#"{"m": {"litellm_provider": "p", "input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6,
        "max_input_tokens": 1000, "max_output_tokens": 100}}"#;
    let e = from_litellm_json(negative).unwrap_err();
    assert!(e.to_string().contains("`m`") && e.to_string().contains("input_per_mtok"), "{e}");
    assert!(from_litellm_json("{}").unwrap().is_empty());
}

#[test]
fn the_command_writes_entries_a_config_reads_back() {
    let models = fixture();
    let toml_text = known_models_example::toml_entries(&models).unwrap();
    let config = RouterConfig::from_toml_str(&toml_text).unwrap();
    assert_eq!(config.models, models);

    let rust = known_models_example::rust_rows(&models);
    assert!(rust.contains(r#"row("openai", "gpt-4o-mini", "gpt-4o-mini", &[], (0.15, Some(0.075), 0.6), (128000, 16384), TVJS, &[SOURCE]),"#), "{rust}");
    assert!(rust.contains(".above(200000, 2.0, 1.5)"), "{rust}");
    assert!(rust.contains("(3.0, Some(0.3), 15.0)"), "{rust}");

    let args = known_models_example::parse_args(
        ["--from", "f.json", "--provider", "openai", "--model", "gpt-4o-mini", "--rust"].map(String::from).into_iter(),
    )
    .unwrap();
    assert_eq!(
        (args.providers.as_slice(), args.models.as_slice(), args.rust),
        (["openai".to_owned()].as_slice(), ["gpt-4o-mini".to_owned()].as_slice(), true)
    );
    assert!(known_models_example::parse_args(["--bogus".to_owned()].into_iter()).is_err());
    assert!(known_models_example::parse_args(["--from".to_owned()].into_iter()).is_err());
}
