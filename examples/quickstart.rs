//! Routes two dozen varied requests over a nine-model portfolio and shows what the router decided, why,
//! and what it cost against always using the strongest model.
//!
//! Runs with no network and no keys: every model is served by the simulated provider.
//!
//! ```text
//! cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use switchyard::{
    Capabilities, ContentPart, Decision, ImageDetail, Message, Request, ResponseFormat, RouterConfig,
    SimulatedProvider, Tool,
};

fn main() {
    if let Err(e) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(try_main()).map_err(|e| e.to_string()))
    {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}

async fn try_main() -> switchyard::Result<()> {
    // The portfolio, classifier weights and policy come from the example config next to this file.
    let config = RouterConfig::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/router.toml"))?;
    let router = config.builder()?.provider(SimulatedProvider::new("sim").seed(42)).build()?;
    let strongest = router
        .catalog()
        .models()
        .iter()
        .max_by(|a, b| a.ability.overall.total_cmp(&b.ability.overall))
        .map(|m| m.id.clone())
        .ok_or_else(|| switchyard::Error::new(switchyard::ErrorKind::Config, "empty catalog"))?;

    println!("switchyard quickstart: {} models, strongest `{strongest}`\n", router.catalog().len());
    println!("{:<4}{:<26}{:<22}{:>11}  why", "#", "request", "model", "est. cost");

    let mut routed_estimate = 0.0;
    let mut strongest_estimate = 0.0;
    let mut actual = 0.0;
    let mut share: BTreeMap<String, usize> = BTreeMap::new();
    let requests = requests();
    for (i, (label, request)) in requests.iter().enumerate() {
        let decision = router.route(request)?;
        routed_estimate += decision.estimated_cost();
        strongest_estimate += strongest_cost(&decision);
        println!(
            "{:<4}{:<26}{:<22}{:>11}  {}",
            i + 1,
            label,
            decision.model(),
            format!("${:.6}", decision.estimated_cost()),
            reasons(&decision)
        );

        let response = router.complete(request.clone()).await?;
        actual += response.cost_usd;
        *share.entry(response.model().to_string()).or_default() += 1;
    }

    let first = router.route(&requests[13].1)?;
    println!("\nOne decision in full:\n  {}\n", first.explain());

    println!("Estimated cost of these {} requests:", requests.len());
    println!("  routed:                  ${routed_estimate:.4}");
    println!("  always the strongest:    ${strongest_estimate:.4}  (the strongest model that fits each request)");
    println!("  saving:                  {:.1}%", 100.0 * (1.0 - routed_estimate / strongest_estimate));
    println!("Actual cost reported by the simulated provider: ${actual:.4}\n");
    println!("Share of calls per model:");
    for (model, n) in &share {
        println!("  {model:<22}{n:>3}  {:>5.1}%", 100.0 * *n as f64 / requests.len() as f64);
    }
    Ok(())
}

/// The estimated cost of the strongest candidate (by overall ability) for this request.
fn strongest_cost(d: &Decision) -> f64 {
    d.candidates()
        .iter()
        .max_by(|a, b| {
            let (pa, pb) = (d.catalog().model(a.model), d.catalog().model(b.model));
            pa.ability.overall.total_cmp(&pb.ability.overall)
        })
        .map_or(0.0, |c| c.cost.usd)
}

/// The top reasons of a decision in one line.
fn reasons(d: &Decision) -> String {
    let mut parts = Vec::new();
    if let Some(note) = d.note() {
        parts.push(note.to_owned());
    }
    if let Some(i) = d.intent() {
        parts.push(format!("{} {:.0}%", i.intent, i.confidence * 100.0));
    }
    if let Some(diff) = d.difficulty() {
        parts.push(format!("difficulty {diff:.1}"));
    }
    if d.is_low_confidence() {
        parts.push(format!("p {:.2} (LOW CONFIDENCE: below the router's floor)", d.chosen().p));
    } else {
        parts.push(format!("p {:.2}", d.chosen().p));
    }
    if let Some(t) = d.input_tokens() {
        parts.push(format!("{} tokens", t.tokens));
    }
    if let Some(next) = d.fallbacks().next() {
        parts.push(format!("then {next}"));
    }
    if !d.rejections().is_empty() {
        let first = &d.rejections()[0];
        parts.push(format!("{} filtered (e.g. {first})", d.rejections().len()));
    }
    parts.join(", ")
}

fn requests() -> Vec<(&'static str, Request)> {
    let article = "The city council approved a new budget on Tuesday after a six-hour session. \
        The plan raises spending on public transit by 12 percent, funds two new libraries, and \
        freezes property taxes for a second year. Critics argued that the transit increase relies on \
        optimistic ridership forecasts, while supporters said the investment is overdue. "
        .repeat(6);
    // About 300k tokens: only the million-token models can read it.
    let long_document = "Section 4.2. The supplier shall deliver the goods described in Schedule A \
        to the premises of the buyer no later than thirty days after the order date, and shall bear \
        all risk of loss until delivery is complete. "
        .repeat(7_500);
    let invoice_tool = Tool::new(
        "record_invoice",
        "Store an invoice in the accounting system",
        r#"{"type":"object","properties":{"number":{"type":"string"},"date":{"type":"string"},"total":{"type":"number"}},"required":["number","date","total"]}"#,
    );
    vec![
        ("greeting", Request::new("hi! how are you today?")),
        ("factual question", Request::new("What is the capital of Australia?")),
        ("recommendation", Request::new("Can you recommend a good science fiction book for the weekend?")),
        ("thanks", Request::new("Thanks, that was really helpful!")),
        ("translation", Request::new("Translate into French: \"The meeting has been moved to Thursday at 3pm.\"")),
        ("haiku", Request::new("Write a haiku about autumn rain.")),
        (
            "short story",
            Request::new(
                "Write a short story of about 500 words about a lighthouse keeper who finds a message in a bottle. Include a twist ending and vivid imagery.",
            ),
        ),
        ("summary", Request::new(format!("Summarize the following article in three bullet points:\n\n{article}"))),
        ("easy code", Request::new("Write a Python function that returns the n-th Fibonacci number.")),
        (
            "debugging",
            Request::new(
                "Why does this code panic?\n```rust\nfn main() {\n    let v: Vec<i32> = Vec::new();\n    println!(\"{}\", v[0]);\n}\n```",
            ),
        ),
        (
            "hard code",
            Request::new(
                "Implement a lock-free multi-producer multi-consumer queue in Rust. It must not allocate on push, \
            must be linearizable, and should handle at least 10M operations per second.\n1. Explain the design and why it is correct\n\
            2. Write the code\n3. Write unit tests and a loom model check",
            ),
        ),
        ("easy arithmetic", Request::new("What is 15% of 240?")),
        (
            "word problem",
            Request::new(
                "A train leaves at 9:40 and travels 210 km at 84 km/h, then waits 12 minutes and travels another 95 km at 76 km/h. At what time does it arrive? Show your work step by step.",
            ),
        ),
        (
            "proof",
            Request::new(
                "Prove rigorously that there are infinitely many primes of the form 4k+3. Explain each step, \
            justify every lemma you use, and then derive whether the same argument works for primes of the form 4k+1.",
            ),
        ),
        (
            "analysis",
            Request::new(
                "Compare the tradeoffs of a microservice architecture and a modular monolith for a five-person startup. \
            Analyze cost, reliability and speed of iteration, and justify which you would choose and why.",
            ),
        ),
        (
            "JSON extraction + tool",
            Request::new(
                "Extract the invoice number, date and total from this email: \"Please find attached \
            invoice INV-2291 dated 3 March 2025 for a total of EUR 1,240.00.\"",
            )
            .with_tool(invoice_tool)
            .with_response_format(ResponseFormat::Json),
        ),
        (
            "300k-token contract",
            Request::new(format!("Summarize the obligations of each party in this contract:\n\n{long_document}")),
        ),
        (
            "image question",
            Request::from_messages(vec![
                Message::user("What is shown in this picture?")
                    .with_part(ContentPart::image("https://example.com/photo.jpg", ImageDetail::Low)),
            ]),
        ),
        (
            "tight latency budget",
            Request::new("Quick: name three primary colors.").with_latency_budget(Duration::from_millis(400)),
        ),
        (
            "enterprise tenant",
            Request::new("Draft a polite reply to a customer whose order arrived late.").with_tenant("acme-enterprise"),
        ),
        (
            "EU data residency",
            Request::new("Summarize this support ticket: the customer cannot log in since the last update.")
                .with_tag("eu"),
        ),
        (
            "cost-capped proof",
            Request::new("Prove that the square root of 2 is irrational, rigorously, step by step.")
                .with_max_cost(0.0005),
        ),
        (
            "cached system prompt",
            Request::new("Which of our plans includes priority support?")
                .with_system("You are the support assistant of Acme Inc. ".repeat(200))
                .with_cached_input_tokens(1_800),
        ),
        (
            "needs JSON + vision",
            Request::from_messages(vec![
                Message::user("List every item on this receipt as JSON.")
                    .with_part(ContentPart::image("data:image/png;base64,iVBORw0KGgo=", ImageDetail::High)),
            ])
            .with_response_format(ResponseFormat::Json)
            .with_required(Capabilities::STREAMING),
        ),
    ]
}
