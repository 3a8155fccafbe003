//! Small labelled data sets with planted signals, shared by the trainer's tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers may unwrap")]

use switchyard_eval::catalog::Prices;
use switchyard_eval::data::{Dataset, Row};

/// Two kinds of prompts: "sum" prompts only the large model answers, "greet" prompts both do;
/// within "sum" prompts, those that mention "carry" defeat the large model too.
pub(crate) fn planted(n: usize) -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = x % 5;
        let (prompt, task, scores) = if i % 2 == 0 {
            (format!("greet the user number {noise} warmly"), "chat", [1.0, 1.0])
        } else if i % 6 == 1 {
            (format!("add the numbers {noise} and {} with carry", x % 97), "math", [0.0, 0.0])
        } else {
            (format!("add the numbers {noise} and {}", x % 89), "math", [0.0, 1.0])
        };
        b.push(Row::new(prompt).with_task(task), &scores, None).unwrap();
    }
    b.build().unwrap()
}

/// Greetings cost the large model little, sums a lot (long answers); both models answer both.
pub(crate) fn costs() -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    for i in 0..300 {
        let (prompt, task, cost) = if i % 2 == 0 {
            (format!("greet the user number {} warmly", i % 7), "chat", [0.001, 0.01])
        } else {
            (format!("add the numbers {} and {}", i % 5, i % 11), "math", [0.001, 0.5])
        };
        b.push(Row::new(prompt).with_task(task), &[1.0, 1.0], Some(&cost)).unwrap();
    }
    b.build().unwrap()
}

/// Short greetings both models answer and sums only the large one does, with distinct openings.
pub(crate) fn openings() -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    for i in 0..200 {
        let (prompt, scores) =
            if i % 2 == 0 { (format!("greet user {i}"), [1.0, 1.0]) } else { (format!("sum {i} and 2"), [0.0, 1.0]) };
        b.push(Row::new(prompt).with_task(if i % 2 == 0 { "chat" } else { "math" }), &scores, None).unwrap();
    }
    b.build().unwrap()
}

/// Prompts of six kinds, for synthetic data sets (greeting, code, equation, proof, summary,
/// comparison).
pub(crate) const PROMPTS: [&str; 6] = [
    "hi there, how are you?",
    "Write a Python function that parses a CSV file and returns a list of dicts.",
    "Solve 3x^2 + 2x - 5 = 0 and compute the sum of the roots, step by step.",
    "Prove that there are infinitely many primes. Explain why each step holds.",
    "Summarize the following article in three bullet points: the council met on Tuesday.",
    "Compare the tradeoffs of the two strategies and justify which is optimal, exactly.",
];

/// Prices per 1M tokens of the three-model synthetic data sets.
pub(crate) fn prices() -> Prices {
    Prices::new([("cheap", 0.1), ("mid", 1.0), ("dear", 10.0)])
}
