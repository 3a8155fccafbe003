//! Routes real requests through Anthropic's Messages API: a cheap and a strong Claude model.
//!
//! ```text
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic --features anthropic
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic --features anthropic -- claude-3-5-haiku-latest claude-sonnet-4-0
//! ```
//!
//! With no key set it prints how to run it and exits. `ANTHROPIC_BASE_URL` points it at a gateway or
//! proxy that speaks the Messages API.
#![allow(clippy::print_stdout)]

use futures::StreamExt;
use switchyard::catalog::Ability;
use switchyard::classify::DifficultyClassifier;
use switchyard::provider::anthropic::Anthropic;
use switchyard::{Capabilities, Catalog, ModelProfile, Pricing, Request, Router, StreamEvent, Tool, Utility};

const HOW_TO: &str = "\
anthropic: set ANTHROPIC_API_KEY to run this example against the Messages API.

  ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic --features anthropic [-- CHEAP_MODEL STRONG_MODEL]

Defaults: claude-3-5-haiku-latest and claude-sonnet-4-0. ANTHROPIC_BASE_URL (optional) points it at a
gateway that speaks the Messages API. For a local model without a key, see the openai_compatible example.";

fn main() {
    let anthropic = match Anthropic::from_env() {
        Ok(a) => a,
        Err(e) => {
            println!("{HOW_TO}\n\n({e})");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    if let Err(e) =
        runtime.map_err(|e| e.to_string()).and_then(|rt| rt.block_on(try_main(anthropic)).map_err(|e| e.to_string()))
    {
        eprintln!("anthropic: {e}");
        std::process::exit(1);
    }
}

async fn try_main(anthropic: Anthropic) -> switchyard::Result<()> {
    let mut args = std::env::args().skip(1);
    let cheap = args.next().unwrap_or_else(|| "claude-3-5-haiku-latest".to_owned());
    let strong = args.next().unwrap_or_else(|| "claude-sonnet-4-0".to_owned());
    let caps = Capabilities::STREAMING | Capabilities::TOOLS | Capabilities::VISION;
    let catalog = Catalog::new([
        ModelProfile::new("haiku", "anthropic")
            .with_api_name(&cheap)
            .with_pricing(Pricing::per_mtok(0.80, 4.00).with_cached_input(0.08))
            .with_context(200_000, 8_192)
            .with_capabilities(caps)
            .with_ability(Ability::new(2.0)),
        ModelProfile::new("sonnet", "anthropic")
            .with_api_name(&strong)
            .with_pricing(Pricing::per_mtok(3.00, 15.00).with_cached_input(0.30))
            .with_context(200_000, 16_000)
            .with_capabilities(caps)
            .with_ability(Ability::new(4.0)),
    ])?;
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(0.1))
        .provider(anthropic)
        .build()?;

    let weather = Tool::new(
        "get_weather",
        "Current weather for a city",
        r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
    );
    let requests = [
        Request::new("What is the capital of Australia? One word.").with_max_tokens(20),
        Request::new("What's the weather in Lisbon right now?").with_tool(weather).with_max_tokens(200),
        Request::new(
            "Prove that there are infinitely many primes of the form 4k+3, justifying each step, and explain why \
             the argument fails for 4k+1.",
        )
        .with_system("You are a careful mathematician.")
        .with_max_tokens(800),
    ];
    for request in requests {
        let response = router.complete(request).await?;
        let model = response.model().as_str();
        println!("--- {model}: {:?}, {:?}, ${:.6}", response.finish_reason, response.usage, response.cost_usd);
        for call in &response.tool_calls {
            println!("tool call `{}` {}", call.name, call.arguments);
        }
        println!("{}\n", response.content());
    }

    print!("--- streamed: ");
    let mut stream = router.stream(Request::new("Count from one to five in words.").with_max_tokens(40)).await?;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(text) => print!("{text}"),
            StreamEvent::Usage(usage) => print!("\n    usage {usage:?}"),
            StreamEvent::Finish(reason) => println!("\n    finished: {reason:?}"),
            _ => {}
        }
    }
    Ok(())
}
