//! Replays the RouterBench test prompts as production traffic: a bandit learns from the data set's
//! scores and costs as feedback, next to every fixed policy on the same traffic; then an A/B test
//! between `Utility` and the bandit runs until its sequential test decides.
//!
//! ```text
//! cargo run --release --example experiment [--features plot] -- [--requests 6000] [--lambda 0.5] [--seed 1]
//!     [--prior-strength 2] [--exploration 0.01] [--svg regret.svg] [--data-dir DIR]
//! ```
//!
//! `--svg` (feature `plot`) draws each bandit's cumulative regret against the best fixed policy.
//!
//! 1. The catalog is fitted on `split_routerdc == train` (as in `examples/evaluate.rs`); traffic is
//!    drawn with replacement from the 947 `test` prompts, each request keyed by one of 500 simulated
//!    users.
//! 2. The reward of answering row `r` with model `m` is `score(r, m) − λ · cost(r, m) / c_ref`, with
//!    `c_ref` the mean cost of the dearest model on the test rows: `score − cost/V`, the objective
//!    `V·score − cost` of `Utility` and of the bandit divided by `V`, both given the answer value
//!    `V = c_ref / λ` in USD.
//! 3. The bandit routes each request with `Router::route` and gets the chosen model's actual score and
//!    cost back through `Router::feedback`. Fixed policies (each single model, `Utility` at the same
//!    `λ`) and the per-row oracle are scored on the same requests.
//!
//! The data set is the repository's `data/` (gzip-compressed), or `--data-dir DIR`.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

use switchyard::catalog::Ability;
use switchyard::hash::Rng;
use switchyard::policy::experiment::{Conclusion, Experiment, Metric, SequentialTest};
use switchyard::{Bandit, Catalog, Error, ErrorKind, Feedback, ModelProfile, Request, Result, Router, Utility};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::data::{Dataset, Format, SplitKind};

struct Args {
    requests: usize,
    lambda: f64,
    seed: u64,
    prior: f64,
    exploration: Option<f64>,
    svg: Option<PathBuf>,
    data_dir: PathBuf,
}

fn usage(msg: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "{msg}\nusage: experiment [--requests 6000] [--lambda 0.5] [--seed 1] [--prior-strength 2] [--exploration 0.01] [--svg regret.svg] [--data-dir DIR]"
        ),
    )
}

fn args() -> Result<Args> {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let mut a = Args { requests: 6_000, lambda: 0.5, seed: 1, prior: 2.0, exploration: None, svg: None, data_dir };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| usage(&format!("`{flag}` needs a value")))?;
        match flag.as_str() {
            "--requests" => a.requests = value.parse().map_err(|_| usage("`--requests` needs an integer"))?,
            "--lambda" => a.lambda = value.parse().map_err(|_| usage("`--lambda` needs a number"))?,
            "--seed" => a.seed = value.parse().map_err(|_| usage("`--seed` needs an integer"))?,
            "--prior-strength" => a.prior = value.parse().map_err(|_| usage("`--prior-strength` needs a number"))?,
            "--exploration" => {
                a.exploration = Some(value.parse().map_err(|_| usage("`--exploration` needs a number"))?);
            }
            "--svg" => a.svg = Some(value.into()),
            "--data-dir" => a.data_dir = value.into(),
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    if a.svg.is_some() && !cfg!(feature = "plot") {
        return Err(usage(
            "`--svg` needs the `plot` feature: cargo run --release --example experiment --features plot -- --svg regret.svg",
        ));
    }
    if a.requests == 0 || !(a.lambda.is_finite() && a.lambda > 0.0) {
        return Err(usage("`--requests` must be positive and `--lambda` finite and > 0"));
    }
    Ok(a)
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("experiment: {e}");
        std::process::exit(1);
    }
}

/// The test rows with their rewards.
struct Traffic<'a> {
    data: &'a Dataset,
    models: usize,
    lambda: f64,
    c_ref: f64,
}

impl Traffic<'_> {
    fn score(&self, row: usize, model: usize) -> f64 {
        self.data.scores()[row * self.models + model]
    }

    fn cost(&self, row: usize, model: usize) -> f64 {
        self.data.costs().map_or(0.0, |c| c[row * self.models + model])
    }

    fn reward(&self, row: usize, model: usize) -> f64 {
        self.score(row, model) - self.lambda * self.cost(row, model) / self.c_ref
    }

    fn request(&self, row: usize, user: usize) -> Request {
        Request::new(self.data.rows()[row].prompt()).with_key(format!("user-{user}"))
    }
}

/// The answer value in USD that makes `V·score − cost` the example's reward times `c_ref / λ`.
fn answer_value(args: &Args, c_ref: f64) -> f64 {
    c_ref / args.lambda
}

fn make_bandit(args: &Args, c_ref: f64) -> Bandit {
    let b = Bandit::new().answer_value(answer_value(args, c_ref)).prior_strength(args.prior).seed(args.seed);
    match args.exploration {
        Some(e) => b.exploration(e),
        None => b,
    }
}

/// Routes the planned requests, feeding back each chosen model's score and cost, and prints the
/// bandit's reward next to the fixed policy's on the same requests. Returns the cumulative regret
/// against the fixed policy after every request.
fn learn(
    label: &str,
    router: &Router,
    traffic: &Traffic<'_>,
    plan: &[(usize, usize)],
    fixed: &[f64],
) -> Result<Vec<(f64, f64)>> {
    println!("\n{label}:");
    println!(
        "  {:>8} {:>12} {:>12} {:>18} {:>18} {:>8}",
        "requests", "bandit", "fixed", "bandit last 1,000", "fixed last 1,000", "gap"
    );
    let mut rewards = Vec::with_capacity(plan.len());
    let mut reached = None;
    for (i, &(r, u)) in plan.iter().enumerate() {
        let d = router.route(&traffic.request(r, u))?;
        let m = d.model_index();
        let feedback = Feedback::success().with_quality(traffic.score(r, m)).with_cost(traffic.cost(r, m));
        router.feedback(d.id(), feedback)?;
        rewards.push(traffic.reward(r, m));
        let done = i + 1;
        let from = done.saturating_sub(1_000);
        let last = rewards[from..].iter().sum::<f64>() / (done - from) as f64;
        let last_fixed = fixed[from..done].iter().sum::<f64>() / (done - from) as f64;
        let gap = (last_fixed - last) / last_fixed.abs();
        if done >= 1_000 && gap <= 0.02 && reached.is_none() {
            reached = Some(done);
        }
        if done % 500 == 0 || done == plan.len() {
            let mean = rewards.iter().sum::<f64>() / done as f64;
            let mean_fixed = fixed[..done].iter().sum::<f64>() / done as f64;
            println!(
                "  {done:>8} {mean:>12.4} {mean_fixed:>12.4} {last:>18.4} {last_fixed:>18.4} {:>7.1}%",
                100.0 * gap
            );
        }
    }
    let mut regret = 0.0;
    let curve: Vec<(f64, f64)> = fixed
        .iter()
        .zip(&rewards)
        .enumerate()
        .map(|(i, (f, b))| {
            regret += f - b;
            ((i + 1) as f64, regret)
        })
        .collect();
    println!("  cumulative regret against the fixed policy: {regret:.1} over {} requests", plan.len());
    match reached {
        Some(n) => println!("  its last 1,000 requests first came within 2% of the fixed policy's after {n} requests"),
        None => println!("  its last 1,000 requests never came within 2% of the fixed policy's"),
    }
    Ok(curve)
}

#[cfg(feature = "plot")]
fn write_svg(path: &Path, curves: Vec<(&str, Vec<(f64, f64)>)>, fixed: &str) -> Result<()> {
    use switchyard_eval::plot::{PlotOptions, Series, lines};
    let series: Vec<Series> = curves.into_iter().map(|(name, points)| Series::new(name, points)).collect();
    let title = format!("Bandits on RouterBench test traffic: regret against {fixed}");
    let text = lines(&series, "requests", "cumulative regret (reward)", &PlotOptions::new().title(title))?;
    std::fs::write(path, text)
        .map_err(|e| Error::new(ErrorKind::Config, format!("cannot write `{}`: {e}", path.display())).with_source(e))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

#[cfg(not(feature = "plot"))]
fn write_svg(_: &Path, _: Vec<(&str, Vec<(f64, f64)>)>, _: &str) -> Result<()> {
    Err(usage("`--svg` needs the `plot` feature"))
}

fn try_main() -> Result<()> {
    let args = args()?;
    let dir = &args.data_dir;
    let all = Dataset::load(dir.join("routerbench_arc_mbpp_winogrande.jsonl.gz"), Format::RouterBench)?;
    let train = all.in_split(SplitKind::RouterDc, "train");
    let test = all.in_split(SplitKind::RouterDc, "test");
    let fitted = FittedCatalog::fit(&train, &Prices::load(dir.join("models.json.gz"), "routerbench")?)?;
    let models = test.models().len();
    for (m, id) in test.models().iter().enumerate() {
        if fitted.catalog().index_of(id) != Some(m) {
            return Err(Error::new(ErrorKind::Config, format!("catalog and data set disagree on `{id}`")));
        }
    }
    // The dearest model by mean cost on the test rows sets the cost scale.
    let costs = test.costs().ok_or_else(|| Error::new(ErrorKind::Config, "the data set has no costs"))?;
    let c_ref = (0..models)
        .map(|m| (0..test.len()).map(|r| costs[r * models + m]).sum::<f64>() / test.len() as f64)
        .fold(0.0, f64::max);
    let traffic = Traffic { data: &test, models, lambda: args.lambda, c_ref };

    let mut draw = Rng::new(args.seed);
    let plan: Vec<(usize, usize)> = (0..args.requests).map(|_| (draw.below(test.len()), draw.below(500))).collect();

    println!(
        "RouterBench test split ({} prompts, {models} models) replayed as {} requests; reward = score − {} · cost / ${:.6}",
        test.len(),
        args.requests,
        args.lambda,
        c_ref
    );

    // Fixed policies on the same traffic.
    let n = plan.len() as f64;
    let mut singles: Vec<(String, f64)> = (0..models)
        .map(|m| (test.models()[m].to_string(), plan.iter().map(|&(r, _)| traffic.reward(r, m)).sum::<f64>() / n))
        .collect();
    singles.sort_by(|a, b| b.1.total_cmp(&a.1));
    let oracle =
        plan.iter().map(|&(r, _)| (0..models).map(|m| traffic.reward(r, m)).fold(f64::MIN, f64::max)).sum::<f64>() / n;
    let utility_router = fitted.builder().policy(Utility::new().answer_value(answer_value(&args, c_ref))).build()?;
    let mut utility_rewards = Vec::with_capacity(plan.len());
    for &(r, u) in &plan {
        utility_rewards.push(traffic.reward(r, utility_router.route(&traffic.request(r, u))?.model_index()));
    }
    let utility = utility_rewards.iter().sum::<f64>() / n;
    let best_single = singles.first().map_or(0, |(name, _)| test.model_index(name).unwrap_or(0));
    let best = singles.first().map_or(0.0, |s| s.1);
    // The best fixed policy, per request: utility or the best single model, whichever did better over
    // the whole traffic.
    let (fixed_name, fixed): (String, Vec<f64>) = if utility >= best {
        (format!("utility (λ = {})", args.lambda), utility_rewards)
    } else {
        (singles[0].0.clone(), plan.iter().map(|&(r, _)| traffic.reward(r, best_single)).collect())
    };
    println!("\nfixed policies, mean reward per request:");
    for (name, reward) in singles.iter().take(4) {
        println!("  {name:<40} {reward:.4}");
    }
    println!("  {:<40} {utility:.4}", format!("utility (λ = {})", args.lambda));
    println!("  {:<40} {oracle:.4}", "oracle (best model per prompt)");

    // The bandit, learning from feedback: with the fitted catalog's predictions as priors, then
    // with a catalog that knows nothing (every ability 0: equal priors for every model).
    println!("\nthe best fixed policy is {fixed_name}; the gap compares the same requests.");
    let warm = make_bandit(&args, c_ref);
    let router = fitted.builder().policy(warm.clone()).build()?;
    let warm_curve = learn("bandit, fitted catalog as prior", &router, &traffic, &plan, &fixed)?;
    let blank: Vec<ModelProfile> = fitted
        .catalog()
        .models()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.ability = Ability::new(0.0);
            m
        })
        .collect();
    let router = fitted.builder().catalog(Catalog::new(blank)?).policy(make_bandit(&args, c_ref)).build()?;
    let cold_curve = learn("bandit, no prior knowledge (every ability 0)", &router, &traffic, &plan, &fixed)?;
    if let Some(path) = &args.svg {
        let curves = vec![("bandit, fitted catalog as prior", warm_curve), ("bandit, no prior knowledge", cold_curve)];
        write_svg(path, curves, &fixed_name)?;
    }

    // An A/B test: utility against the bandit that learned above (and keeps learning), on the reward
    // both maximise, until the sequential test decides (or 50,000 requests).
    let experiment = Experiment::builder("utility-vs-bandit")
        .arm("utility", 1.0, Utility::new().answer_value(answer_value(&args, c_ref)))
        .arm("bandit", 1.0, warm)
        .sequential_test(
            SequentialTest::new()
                .metric(Metric::Reward { answer_value_usd: answer_value(&args, c_ref) })
                .alpha(0.05)
                .min_samples(500),
        )
        .build()?;
    let handle = experiment.handle();
    // The bandit is bound to the fitted catalog; this router uses the very same one.
    let ab: Router = fitted.builder().policy(experiment).build()?;
    let mut draw = Rng::new(args.seed ^ 0xAB);
    let mut sent = 0;
    for _ in 0..50_000 {
        let (r, u) = (draw.below(test.len()), draw.below(5_000));
        let d = ab.route(&traffic.request(r, u))?;
        let m = d.model_index();
        ab.feedback(d.id(), Feedback::success().with_quality(traffic.score(r, m)).with_cost(traffic.cost(r, m)))?;
        sent += 1;
        if handle.report().comparisons.iter().all(|c| c.verdict != Conclusion::Undecided) {
            break;
        }
    }
    println!("\nA/B test after {sent} requests:\n{}", handle.report());
    Ok(())
}
