//! The optimizer benchmark of issue 18 (run in release: `scripts/bench-routes`).
//!
//! 1. 100 hosts × 100 storage entities (10,000 routes, Pareto(α = 1.2) traffic), k = 8, no current map,
//!    1 s budget: the busiest gateway against the ideal max(total/k, largest route) (target: within 1%).
//! 2. 10 hosts × 10 storage entities × k = 4, w_change > 0 and a current map (balanced for last interval's
//!    traffic, which has since changed): the objective at 1 s against the best known (a long run) and against
//!    greedy alone and keeping the current map.
//!
//! 3. What annealing and tabu add: 8 instances of 40 routes on k = 5, each route allowed two gateways, random
//!    current map, w_change = 30: local search alone, then the heuristics with 300,000 annealing steps (no
//!    branch-and-bound), against the optimum that branch-and-bound proves.
//!
//! Arguments: `[BEST_KNOWN_SECONDS]` (default 20) for the long run of case 2.

use dvsan_routing::exhaustive::branch_and_bound;
use dvsan_routing::heuristics::greedy;
use dvsan_routing::objective::{evaluate, loads};
use dvsan_routing::{solve, Budget, GatewayId, Problem, RouteInput, RoutesInput, SolveOptions};
use std::time::{Duration, Instant};

fn pareto(rng: &mut fastrand::Rng, alpha: f64) -> f64 {
    // Inverse CDF, x_m = 1; 1 − U in (0, 1].
    (1.0 - rng.f64()).powf(-1.0 / alpha)
}

fn case_one() {
    let mut rng = fastrand::Rng::with_seed(18);
    let gateways: Vec<String> = (1..=8).map(|g| format!("g{g}")).collect();
    let mut routes = Vec::with_capacity(10_000);
    for h in 0..100 {
        for s in 0..100 {
            routes.push(RouteInput {
                host: format!("h{h}"),
                storage: format!("s{s}"),
                traffic: pareto(&mut rng, 1.2),
                gateway: None,
                allowed: None,
            });
        }
    }
    let input = RoutesInput { gateways, w_var: 1.0, w_change: 0.0, one_gateway_per_storage: false, routes };
    let problem = Problem::from_input(&input).expect("valid");
    let total = problem.total_traffic;
    let largest = problem.routes.iter().map(|r| r.traffic).fold(0.0, f64::max);
    let ideal = (total / 8.0).max(largest);
    let busiest = |assign: &[GatewayId]| loads(&problem, assign).into_iter().fold(0.0, f64::max);
    println!("## Case 1: 10,000 routes (Pareto α = 1.2), k = 8, no current map");
    println!("total {total:.1}, largest route {largest:.1}, ideal busiest max(total/k, largest) = {ideal:.1}");
    println!();
    println!("| run | time | busiest | over ideal | method |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let started = Instant::now();
    let g = greedy(&problem);
    let greedy_time = started.elapsed();
    let b = busiest(&g);
    println!("| greedy alone | {:.1} ms | {b:.1} | {:.4}% | greedy |", ms(greedy_time), 100.0 * (b / ideal - 1.0));
    for seed in 0..3 {
        let options = SolveOptions { seed, budget: Budget::Time(Duration::from_secs(1)), ..SolveOptions::default() };
        let started = Instant::now();
        let solution = solve(&problem, &options);
        let elapsed = started.elapsed();
        let b = busiest(&solution.units);
        println!(
            "| 1 s budget, seed {seed} | {:.0} ms | {b:.1} | {:.4}% | {} |",
            ms(elapsed),
            100.0 * (b / ideal - 1.0),
            solution.method.as_str()
        );
    }
    println!();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn case_two(best_known_secs: u64) {
    let mut rng = fastrand::Rng::with_seed(1018);
    let gateways: Vec<String> = (1..=4).map(|g| format!("g{g}")).collect();
    // Last interval's traffic, balanced by greedy: the current map.
    let mut routes = Vec::with_capacity(100);
    for h in 0..10 {
        for s in 0..10 {
            routes.push(RouteInput {
                host: format!("h{h}"),
                storage: format!("s{s}"),
                traffic: pareto(&mut rng, 1.5) * 10.0,
                gateway: None,
                allowed: None,
            });
        }
    }
    let before = RoutesInput {
        gateways: gateways.clone(),
        w_var: 1.0,
        w_change: 0.0,
        one_gateway_per_storage: false,
        routes: routes.clone(),
    };
    let before = Problem::from_input(&before).expect("valid");
    let current = greedy(&before);
    // This interval: every route's traffic changed by a factor 0.3–3, and a third of the routes may use only
    // two gateways (both including the current one).
    for (i, route) in routes.iter_mut().enumerate() {
        let g = current[i].index();
        route.gateway = Some(gateways[g].clone());
        route.traffic *= 0.3 + 2.7 * rng.f64();
        if i % 3 == 0 {
            route.allowed = Some(vec![gateways[g].clone(), gateways[(g + 1 + rng.usize(..3)) % 4].clone()]);
        }
    }
    let mut input = RoutesInput { gateways, w_var: 1.0, w_change: 0.0, one_gateway_per_storage: false, routes };
    let unweighted = Problem::from_input(&input).expect("valid");
    let keep_variance = evaluate(&unweighted, &current).variance;
    // A change costs 1/50 of the current map's variance: moving every route would cost twice what it has now.
    input.w_change = keep_variance / 50.0;
    let problem = Problem::from_input(&input).expect("valid");
    let keep = evaluate(&problem, &current);
    let greedy_score = evaluate(&problem, &greedy(&problem));
    let long = solve(
        &problem,
        &SolveOptions {
            seed: 99,
            budget: Budget::Time(Duration::from_secs(best_known_secs)),
            ..SolveOptions::default()
        },
    );
    let mut runs = Vec::new();
    for seed in 0..5 {
        let options = SolveOptions { seed, budget: Budget::Time(Duration::from_secs(1)), ..SolveOptions::default() };
        let started = Instant::now();
        let solution = solve(&problem, &options);
        runs.push((seed, started.elapsed(), solution));
    }
    let mut best_known = runs.iter().map(|(_, _, s)| s.score.objective).fold(long.score.objective, f64::min);
    // Branch-and-bound from the best map, for as long as the long run: when it finishes, the best is optimal.
    let started = Instant::now();
    let limit = Duration::from_secs(best_known_secs);
    let exact = branch_and_bound(&problem, Some(&long.units), u64::MAX, &mut || started.elapsed() > limit);
    best_known = best_known.min(exact.objective);
    println!("## Case 2: 100 routes (10 × 10), k = 4, w_var = 1, w_change = {:.1}, a current map", input.w_change);
    println!(
        "best known = the least of a {best_known_secs} s run, the 1 s runs and branch-and-bound ({} nodes in {:.1} s, {}); \
         lower bound {:.1}",
        exact.nodes,
        started.elapsed().as_secs_f64(),
        if exact.complete { "finished: the best known is optimal" } else { "did not finish" },
        long.lower_bound
    );
    println!();
    println!("| map | time | objective | variance | changes | over best known | method | proved optimal |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |");
    let row = |name: &str, time: &str, score: &dvsan_routing::objective::Score, method: &str, optimal: bool| {
        println!(
            "| {name} | {time} | {:.1} | {:.1} | {} | {:.2}% | {method} | {} |",
            score.objective,
            score.variance,
            score.changes,
            100.0 * (score.objective / best_known - 1.0),
            if optimal { "yes" } else { "no" }
        );
    };
    row("keep the current map", "-", &keep, "-", false);
    row("greedy alone", "-", &greedy_score, "greedy", false);
    for (seed, elapsed, s) in &runs {
        let time = format!("{:.0} ms", ms(*elapsed));
        row(&format!("1 s budget, seed {seed}"), &time, &s.score, s.method.as_str(), s.optimal);
    }
    row(&format!("{best_known_secs} s budget, seed 99"), "-", &long.score, long.method.as_str(), long.optimal);
}

fn case_three() {
    println!();
    println!("## Case 3: 8 × 40 routes, k = 5, two allowed gateways each, a random current map, w_change = 30");
    println!();
    println!("| instance | local search alone | + annealing and tabu (300k steps) | optimum (branch-and-bound nodes) | found by |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for instance in 0..8u64 {
        let mut rng = fastrand::Rng::with_seed(instance);
        let k = 5;
        let gateways: Vec<String> = (1..=k).map(|g| format!("g{g}")).collect();
        let routes: Vec<RouteInput> = (0..40)
            .map(|i| {
                let a = rng.usize(..k);
                RouteInput {
                    host: format!("h{}", i / 8),
                    storage: format!("s{}", i % 8),
                    traffic: pareto(&mut rng, 1.3) * 10.0,
                    gateway: Some(gateways[rng.usize(..k)].clone()),
                    allowed: Some(vec![gateways[a].clone(), gateways[(a + 1 + rng.usize(..k - 1)) % k].clone()]),
                }
            })
            .collect();
        let input = RoutesInput { gateways, w_var: 1.0, w_change: 30.0, one_gateway_per_storage: false, routes };
        let problem = Problem::from_input(&input).expect("valid");
        let options =
            |steps| SolveOptions { seed: 1, budget: Budget::Iterations(steps), exhaustive_limit: 0, proof_nodes: 0 };
        let descent = solve(&problem, &options(0));
        let full = solve(&problem, &options(300_000));
        let exact = branch_and_bound(&problem, Some(&full.units), u64::MAX, &mut || false);
        println!(
            "| {instance} | {:.2} (+{:.2}%) | {:.2} (+{:.2}%) | {:.2} ({}) | {} |",
            descent.score.objective,
            100.0 * (descent.score.objective / exact.objective - 1.0),
            full.score.objective,
            100.0 * (full.score.objective / exact.objective - 1.0),
            exact.objective,
            exact.nodes,
            full.method.as_str()
        );
    }
}

fn main() {
    let best_known_secs = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    case_one();
    case_two(best_known_secs);
    case_three();
}
