//! The optimizer's entry points: [`solve`] on a checked [`Problem`], [`solve_input`] from the file format.
//!
//! Exhaustive search (branch-and-bound, [`crate::exhaustive`]) when k^(units of choice) is at most
//! [`SolveOptions::exhaustive_limit`]. Otherwise: start maps (greedy, objective-greedy, the current map) each
//! improved by local search ([`crate::heuristics`]); then, on up to 1000 units, branch-and-bound from the best
//! of them for at most [`SolveOptions::proof_nodes`] nodes (and 40% of a time budget), which often proves the
//! map optimal (then the answer's lower bound is its objective and the method stays what found the map);
//! otherwise simulated annealing, tabu search and a final descent, keeping the best map and the phase that
//! found it. It stops early when the map meets the lower bound ([`crate::bound`]).
//!
//! Determinism: with [`Budget::Iterations`] the result depends only on the problem, the options and the seed.
//! With [`Budget::Time`] the phases stop when their share of the time is used, so the result is deterministic
//! only for a given amount of work (a faster or less loaded machine may search further).

use crate::bound::lower_bound;
use crate::exhaustive::branch_and_bound;
use crate::heuristics::{anneal, from_current, greedy, local_search, objective_greedy, tabu};
use crate::ids::GatewayId;
use crate::input::{RouteAssignment, RoutesInput, SolveOutput};
use crate::objective::{evaluate, Score, SearchState};
use crate::problem::{Problem, ProblemError};
use std::time::{Duration, Instant};

/// How long the heuristics search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Wall-clock time for the whole solve.
    Time(Duration),
    /// Annealing steps; tabu search takes a quarter as many. Exactly reproducible for a seed.
    Iterations(u64),
}

/// Options of [`solve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolveOptions {
    pub seed: u64,
    pub budget: Budget,
    /// Largest k^(units) searched exhaustively.
    pub exhaustive_limit: u64,
    /// Nodes of the branch-and-bound that tries to prove a larger problem's best start optimal (0: no attempt).
    pub proof_nodes: u64,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            seed: 0,
            budget: Budget::Time(Duration::from_secs(1)),
            exhaustive_limit: 1_000_000,
            proof_nodes: 10_000_000,
        }
    }
}

/// What found the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Exhaustive,
    Greedy,
    Current,
    LocalSearch,
    Annealing,
    Tabu,
}

impl Method {
    /// The name in the output's `method` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exhaustive => "exhaustive",
            Method::Greedy => "greedy",
            Method::Current => "current",
            Method::LocalSearch => "local-search",
            Method::Annealing => "annealing",
            Method::Tabu => "tabu",
        }
    }
}

/// A solved map.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Unit of choice → gateway.
    pub units: Vec<GatewayId>,
    /// Route → gateway (input order).
    pub routes: Vec<GatewayId>,
    pub score: Score,
    /// A lower bound on any map's objective (the objective itself when `optimal`).
    pub lower_bound: f64,
    /// Whether an exhaustive search proved the map optimal.
    pub optimal: bool,
    pub method: Method,
}

impl Solution {
    /// `(objective − lower_bound) / objective`, 0 for a zero objective.
    pub fn gap(&self) -> f64 {
        if self.score.objective > 0.0 {
            ((self.score.objective - self.lower_bound) / self.score.objective).max(0.0)
        } else {
            0.0
        }
    }
}

/// k^n, saturating.
fn evaluations(k: usize, n: usize) -> u64 {
    let mut total: u64 = 1;
    for _ in 0..n {
        total = total.saturating_mul(k as u64);
    }
    total
}

struct Best {
    assign: Vec<GatewayId>,
    objective: f64,
    method: Method,
}

impl Best {
    fn offer(&mut self, assign: &[GatewayId], objective: f64, method: Method) {
        if self.assign.is_empty() || objective < self.objective - 1e-12 * self.objective.abs().max(1.0) {
            self.assign = assign.to_vec();
            self.objective = objective;
            self.method = method;
        }
    }
}

/// Solves `problem`.
pub fn solve(problem: &Problem, options: &SolveOptions) -> Solution {
    let start = Instant::now();
    let deadline = match options.budget {
        Budget::Time(t) => Some(start + t),
        Budget::Iterations(_) => None,
    };
    let past = |share: f64| -> bool { deadline.is_some_and(|d| Instant::now() >= start + (d - start).mul_f64(share)) };
    let bound = lower_bound(problem);
    let n = problem.units.len();
    let k = problem.k();
    let finish = |assign: Vec<GatewayId>, method: Method, optimal: bool| -> Solution {
        let score = evaluate(problem, &assign);
        let routes = problem.routes.iter().map(|r| assign[r.unit.index()]).collect();
        let lower_bound = if optimal { score.objective } else { bound.min(score.objective) };
        Solution { units: assign, routes, score, lower_bound, optimal, method }
    };

    // Start maps, each improved by a descent.
    let mut best = Best { assign: Vec::new(), objective: f64::INFINITY, method: Method::Greedy };
    let mut starts: Vec<(Vec<GatewayId>, Method)> = Vec::new();
    if let Some(current) = from_current(problem) {
        starts.push((current, Method::Current));
    }
    starts.push((greedy(problem), Method::Greedy));
    starts.push((objective_greedy(problem), Method::Greedy));
    for (assign, method) in &starts {
        best.offer(assign, evaluate(problem, assign).objective, *method);
    }

    // One gateway carries everything (and the enumeration would recurse once per unit).
    if k == 1 {
        return finish(vec![GatewayId(0); n], Method::Exhaustive, true);
    }
    if evaluations(k, n) <= options.exhaustive_limit {
        let exact = branch_and_bound(problem, Some(&best.assign), u64::MAX, &mut || false);
        return finish(exact.assign, Method::Exhaustive, true);
    }
    let met_bound = |best: &Best| best.objective <= bound + 1e-12 * bound.abs().max(1.0);

    let mut rng = fastrand::Rng::with_seed(options.seed);
    for (assign, method) in starts {
        let mut state = SearchState::new(problem, assign);
        let improved = local_search(problem, &mut state, &mut || past(0.2));
        best.offer(&state.assign, state.objective, if improved { Method::LocalSearch } else { method });
    }
    // Branch-and-bound from the best map (its recursion is as deep as the units are many).
    if !met_bound(&best) && n <= 1000 && options.proof_nodes > 0 {
        let exact = branch_and_bound(problem, Some(&best.assign), options.proof_nodes, &mut || past(0.4));
        best.offer(&exact.assign, exact.objective, Method::Exhaustive);
        if exact.complete {
            return finish(best.assign, best.method, true);
        }
    }
    if !met_bound(&best) {
        let mut state = SearchState::new(problem, best.assign.clone());
        let phase_start = Instant::now();
        let mut clock = |i: u64| -> Option<f64> {
            match (options.budget, deadline) {
                (Budget::Iterations(total), _) => (i < total).then(|| i as f64 / total as f64),
                (Budget::Time(t), Some(d)) => {
                    let now = Instant::now();
                    let phase_end = (start + t.mul_f64(0.65)).max(phase_start);
                    (now < phase_end && now < d).then(|| {
                        now.saturating_duration_since(phase_start).as_secs_f64()
                            / (phase_end - phase_start).as_secs_f64().max(1e-9)
                    })
                }
                (Budget::Time(_), None) => None,
            }
        };
        let (assign, objective) = anneal(problem, &mut state, &mut rng, &mut clock);
        best.offer(&assign, objective, Method::Annealing);
    }
    if !met_bound(&best) {
        let mut state = SearchState::new(problem, best.assign.clone());
        let steps = match options.budget {
            Budget::Iterations(total) => total / 4,
            Budget::Time(_) => u64::MAX,
        };
        let (assign, objective) = tabu(problem, &mut state, steps, &mut rng, &mut || past(0.9));
        best.offer(&assign, objective, Method::Tabu);
    }
    if !met_bound(&best) {
        let mut state = SearchState::new(problem, best.assign.clone());
        if local_search(problem, &mut state, &mut || past(1.0)) {
            best.offer(&state.assign, state.objective, Method::LocalSearch);
        }
    }
    finish(best.assign, best.method, false)
}

/// Checks `input`, solves it and returns the output format.
pub fn solve_input(input: &RoutesInput, options: &SolveOptions) -> Result<SolveOutput, ProblemError> {
    let problem = Problem::from_input(input)?;
    let solution = solve(&problem, options);
    Ok(output(&problem, &solution))
}

/// The output format of `solution`.
pub fn output(problem: &Problem, solution: &Solution) -> SolveOutput {
    SolveOutput {
        routes: problem
            .routes
            .iter()
            .zip(&solution.routes)
            .map(|(r, g)| RouteAssignment {
                host: r.host.clone(),
                storage: r.storage.clone(),
                gateway: problem.gateways[g.index()].clone(),
            })
            .collect(),
        objective: solution.score.objective,
        variance: solution.score.variance,
        changes: solution.score.changes,
        lower_bound: solution.lower_bound,
        gap: solution.gap(),
        method: solution.method.as_str().to_string(),
    }
}
