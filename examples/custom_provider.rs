//! Implementing `Provider` for an in-house backend, end to end with the router, no network.
//!
//! The "backend" is an in-process function standing in for a company's own inference service: it
//! answers, fails with a status code, or says the prompt is too long. The provider maps each outcome to
//! an error kind, reports usage, and is registered with a router next to nothing else.
//!
//! ```text
//! cargo run --example custom_provider
//! ```
#![allow(clippy::print_stdout)]

use async_trait::async_trait;
use switchyard::catalog::Ability;
use switchyard::classify::DifficultyClassifier;
use switchyard::{
    Catalog, Completion, Error, ErrorKind, FinishReason, ModelProfile, Pricing, Provider, Request, Result, Router,
    Usage, Utility,
};

/// What the in-house service returns: an answer with token counts, or a status and a short code.
enum Reply {
    Answer { text: String, prompt_tokens: u32, completion_tokens: u32 },
    Failed { status: u16, code: &'static str },
}

/// The in-house service, in process: a stand-in for its HTTP or gRPC client.
fn backend(model: &str, prompt: &str) -> Reply {
    let prompt_tokens = prompt.split_whitespace().count() as u32 + 4;
    match model {
        _ if prompt_tokens > 2_000 => Reply::Failed { status: 400, code: "prompt_too_long" },
        "house-small-v3" if prompt.contains("overload") => Reply::Failed { status: 503, code: "overloaded" },
        "house-small-v3" | "house-large-v1" => {
            let text = format!("[{model}] you asked about {} words", prompt_tokens - 4);
            Reply::Answer { completion_tokens: text.split_whitespace().count() as u32, text, prompt_tokens }
        }
        _ => Reply::Failed { status: 404, code: "unknown_model" },
    }
}

/// The provider: one name, one mapping of outcomes to the crate's error kinds.
struct InHouse;

#[async_trait]
impl Provider for InHouse {
    fn name(&self) -> &str {
        "inhouse"
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let prompt = request.texts().collect::<Vec<_>>().join("\n");
        match backend(model.api_name(), &prompt) {
            Reply::Answer { text, prompt_tokens, completion_tokens } => {
                Ok(Completion::new(text, FinishReason::Stop, Usage::new(prompt_tokens, completion_tokens)))
            }
            // Only the service's short code goes into the message: never the prompt.
            Reply::Failed { status, code } => {
                let message = format!("provider `inhouse` failed with `{code}`");
                let error = match status {
                    400 if code == "prompt_too_long" => Error::context_overflow(message),
                    404 => Error::new(ErrorKind::ModelNotFound, message),
                    429 => Error::rate_limited(message, None),
                    500..=599 => Error::server(message),
                    _ => Error::new(ErrorKind::BadRequest, message),
                };
                Err(error.with_status(status))
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build();
    if let Err(e) = runtime.map_err(|e| e.to_string()).and_then(|rt| rt.block_on(try_main()).map_err(|e| e.to_string()))
    {
        eprintln!("custom_provider: {e}");
        std::process::exit(1);
    }
}

async fn try_main() -> Result<()> {
    let catalog = Catalog::new([
        ModelProfile::new("small", "inhouse")
            .with_api_name("house-small-v3")
            .with_pricing(Pricing::per_mtok(0.05, 0.20))
            .with_ability(Ability::new(0.5)),
        ModelProfile::new("large", "inhouse")
            .with_api_name("house-large-v1")
            .with_pricing(Pricing::per_mtok(1.00, 4.00))
            .with_ability(Ability::new(3.5)),
    ])?;
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(0.1))
        .provider(InHouse)
        .build()?;

    for prompt in [
        "What is the capital of Australia?",
        "Prove that the square root of two is irrational, then generalise the argument to every prime and explain \
         each step carefully.",
    ] {
        let response = router.complete(Request::new(prompt)).await?;
        let model = response.model().as_str();
        println!("{model:<6} ${:.8}  {}", response.cost_usd, response.content());
    }
    // Failures come back typed: callers (and the router) decide on `kind()`, not on text.
    for request in
        [Request::new("please overload the service").with_allowed(["small"]), Request::new("word ".repeat(3_000))]
    {
        match router.complete(request).await {
            Ok(response) => println!("unexpected answer: {}", response.content()),
            Err(e) => println!("{:<16} {e} (retryable: {})", e.kind().as_str(), e.is_retryable()),
        }
    }
    Ok(())
}
