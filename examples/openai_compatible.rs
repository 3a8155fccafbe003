//! Routes real requests through an OpenAI-compatible server: OpenAI itself, or a local server such as
//! Ollama, llama.cpp's `llama-server` or vLLM.
//!
//! ```text
//! # OpenAI (models default to gpt-4o-mini and gpt-4o)
//! OPENAI_API_KEY=sk-... cargo run --example openai_compatible --features openai
//!
//! # Ollama (`ollama pull llama3.2` first); name a cheap and a strong model
//! OPENAI_BASE_URL=http://127.0.0.1:11434/v1 cargo run --example openai_compatible --features openai -- llama3.2 llama3.1:8b
//! ```
//!
//! With neither variable set it prints how to run it and exits.
#![allow(clippy::print_stdout)]

use futures::StreamExt;
use switchyard::catalog::Ability;
use switchyard::classify::DifficultyClassifier;
use switchyard::provider::openai::OpenAi;
use switchyard::{Capabilities, Catalog, ModelProfile, Pricing, Request, ResponseFormat, Router, StreamEvent, Utility};

const HOW_TO: &str = "\
openai_compatible: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (any OpenAI-compatible server).

  OpenAI:     OPENAI_API_KEY=sk-... cargo run --example openai_compatible --features openai
  Ollama:     ollama serve & ollama pull llama3.2
              OPENAI_BASE_URL=http://127.0.0.1:11434/v1 cargo run --example openai_compatible --features openai -- llama3.2 llama3.2
  llama.cpp:  llama-server -m model.gguf --port 8080
              OPENAI_BASE_URL=http://127.0.0.1:8080/v1 cargo run --example openai_compatible --features openai -- local local
  vLLM:       vllm serve Qwen/Qwen2.5-1.5B-Instruct
              OPENAI_BASE_URL=http://127.0.0.1:8000/v1 cargo run --example openai_compatible --features openai -- Qwen/Qwen2.5-1.5B-Instruct Qwen/Qwen2.5-1.5B-Instruct

The two optional arguments name the cheap and the strong model (default: gpt-4o-mini gpt-4o).";

fn main() {
    let openai = match OpenAi::from_env() {
        Ok(openai) => openai,
        Err(e) => {
            println!("{HOW_TO}\n\n({e})");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    if let Err(e) =
        runtime.map_err(|e| e.to_string()).and_then(|rt| rt.block_on(try_main(openai)).map_err(|e| e.to_string()))
    {
        eprintln!("openai_compatible: {e}");
        std::process::exit(1);
    }
}

async fn try_main(openai: OpenAi) -> switchyard::Result<()> {
    let mut args = std::env::args().skip(1);
    let cheap = args.next().unwrap_or_else(|| "gpt-4o-mini".to_owned());
    let strong = args.next().unwrap_or_else(|| "gpt-4o".to_owned());
    let caps = Capabilities::STREAMING | Capabilities::JSON;
    let catalog = Catalog::new([
        ModelProfile::new("cheap", "openai")
            .with_api_name(&cheap)
            .with_pricing(Pricing::per_mtok(0.15, 0.60).with_cached_input(0.075))
            .with_capabilities(caps)
            .with_ability(Ability::new(1.5)),
        ModelProfile::new("strong", "openai")
            .with_api_name(&strong)
            .with_pricing(Pricing::per_mtok(2.50, 10.00).with_cached_input(1.25))
            .with_capabilities(caps)
            .with_ability(Ability::new(4.0)),
    ])?;
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(0.1))
        .provider(openai)
        .build()?;

    let requests = [
        Request::new("What is the capital of Australia? One word.").with_max_tokens(20),
        Request::new(
            "Prove that there are infinitely many primes of the form 4k+3, justifying each step, and explain why \
             the argument fails for 4k+1.",
        )
        .with_max_tokens(600),
        Request::new("Give the three largest moons of Jupiter as a JSON object {\"moons\": [...]}.")
            .with_response_format(ResponseFormat::Json)
            .with_max_tokens(100),
    ];
    for request in requests {
        let response = router.complete(request).await?;
        let model = response.model().as_str();
        println!("--- {model}: {:?}, ${:.6}", response.usage, response.cost_usd);
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
